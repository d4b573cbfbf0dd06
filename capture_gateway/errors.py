"""Errors a capture request can end in; each becomes a JSON answer ``{status, code, error}``.

    CaptureError                      (status, code)
    ├── BadRequest                    400  invalid_payload, invalid_json, missing_event, …
    ├── Unauthorized                  401  missing_token, invalid_token, unknown_token, personal_api_key
    ├── MethodNotAllowed              405  method_not_allowed
    ├── RequestTimeout                408  request_timeout
    ├── PayloadTooLarge               413  payload_too_large
    ├── UnsupportedMediaType          415  unsupported_encoding
    ├── RateLimited                   429  rate_limited
    └── ServiceUnavailable            503  starting

``CaptureError`` hangs from ``headwater.errors.HeadwaterError``. A dependency's outage is
``headwater.errors.Unavailable`` (raised by the producer and the project lookup, with the code
``kafka_unavailable``, ``projects_unavailable`` or ``topic_missing``); it is answered 503 too.
A handler raises these and ``render_error`` turns them into the answer, for the capture
endpoints (``asgi.py``) and Starlette's exception handlers (``app.py``) alike. Anything else
escaping a handler is a bug: it is logged and answered 500 without a traceback.
"""

from __future__ import annotations

import orjson

from headwater.errors import HeadwaterError, Unavailable


class CaptureError(HeadwaterError):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(CaptureError):
    status = 400
    code = "invalid_payload"


class Unauthorized(CaptureError):
    status = 401
    code = "invalid_token"


class MethodNotAllowed(CaptureError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(CaptureError):
    status = 408
    code = "request_timeout"


class RateLimited(CaptureError):
    status = 429
    code = "rate_limited"


class PayloadTooLarge(CaptureError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(CaptureError):
    status = 415
    code = "unsupported_encoding"


class ServiceUnavailable(CaptureError):
    status = 503
    code = "starting"


def render_error(exc: CaptureError | Unavailable) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body ``{status, code, error}`` and extra headers of the answer to ``exc``."""
    if isinstance(exc, Unavailable):
        return 503, orjson.dumps({"status": 503, "code": exc.code, "error": exc.message}), {}
    body = orjson.dumps({"status": exc.status, "code": exc.code, "error": exc.message})
    headers = {"Retry-After": "1"} if isinstance(exc, RateLimited) else {}
    return exc.status, body, headers
