"""Errors a capture request can end in; each becomes a JSON answer ``{status, code, error}``.

    CaptureError                      (status, code)
    ├── BadRequest                    400  invalid_payload, invalid_json, missing_event, …
    ├── Unauthorized                  401  missing_token, invalid_token, unknown_token, personal_api_key
    ├── RequestTimeout                408  request_timeout
    ├── PayloadTooLarge               413  payload_too_large
    ├── UnsupportedMediaType          415  unsupported_encoding
    ├── RateLimited                   429  rate_limited
    └── ServiceUnavailable            503  kafka_unavailable, projects_unavailable, topic_missing

A handler raises these; one exception handler in ``app.py`` renders them. Anything else
escaping a handler is a bug: it is logged and answered 500 without a traceback.
"""

from __future__ import annotations


class CaptureError(Exception):
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
    code = "kafka_unavailable"
