"""The capture endpoints as pure ASGI: what the hot path needs from a request, and nothing more.

``CaptureEndpoints`` is a middleware in the Starlette app (inside CORS and the server-error
middleware) that answers the capture paths itself and passes every other request on to the
router. A capture request is read straight from the ASGI scope into a small
``CaptureRequest``; handlers return an ``Answer``. Starlette's request and response objects,
its exception middleware and its router cost more per request than everything Headwater does
to a single event (``bench/README.md``), and capture is where the traffic is.

The body is read here (``bodies.BodyReader``), within the endpoint's size limit and the body
deadline.

CORS for the capture paths is answered here too, with the policy ``app.py`` gives Starlette's
CORS middleware for the other routes (any origin, mirrored, with credentials; preflights
allow the capture methods and whatever headers they ask for). Starlette's middleware wraps
``send`` and parses headers on every request, which costs more than the policy itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from capture_gateway import telemetry
from capture_gateway.errors import (
    CaptureError,
    MethodNotAllowed,
    ServiceUnavailable,
    render_error,
)
from headwater.errors import Unavailable

if TYPE_CHECKING:
    from capture_gateway.context import GatewayContext

log = logging.getLogger("headwater.gateway")

JSON_TYPE = (b"content-type", b"application/json")
CORS_MAX_AGE = 3600
VARY_ORIGIN = (b"vary", b"Origin")


@dataclass(slots=True)
class CaptureRequest:
    """One capture request: method, path, query, headers (lower-case names), peer, body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    peer: str | None
    body: bytes = b""

    @classmethod
    def from_scope(cls, scope: Scope) -> CaptureRequest:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            # a repeated header (X-Forwarded-For from two proxies) is one comma-separated list
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query_string: bytes = scope.get("query_string", b"")
        query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)) if query_string else {}
        client = scope.get("client")
        return cls(scope["method"], scope["path"], query, headers, client[0] if client else None)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a capture handler answers: a status and a JSON body (empty for 204)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """A capture path's handler, the methods it accepts and the most body it reads."""

    handler: Callable[[CaptureRequest, GatewayContext], Awaitable[Answer]]
    methods: frozenset[str]
    body_limit: int


def cors_headers(request: CaptureRequest) -> list[tuple[bytes, bytes]]:
    """The CORS headers of an answer to ``request``: its origin mirrored, with credentials."""
    origin = request.headers.get("origin")
    if origin is None:
        return [VARY_ORIGIN]
    return [(b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"), VARY_ORIGIN]


def preflight(request: CaptureRequest, methods: frozenset[str]) -> Answer:
    """The answer to ``OPTIONS``: a CORS preflight when it is one, else 204."""
    if "origin" not in request.headers or "access-control-request-method" not in request.headers:
        return Answer(204)
    headers = [(b"access-control-allow-methods", ", ".join(sorted(methods)).encode()),
               (b"access-control-max-age", str(CORS_MAX_AGE).encode())]
    asked = request.headers.get("access-control-request-headers")
    if asked:
        headers.append((b"access-control-allow-headers", asked.encode("latin-1")))
    return Answer(200, b"", tuple(headers))


async def send_answer(send: Send, answer: Answer, extra: list[tuple[bytes, bytes]]) -> None:
    telemetry.requests_answered(answer.status)
    headers = [(b"content-length", str(len(answer.body)).encode())]
    if answer.body:
        headers.append(JSON_TYPE)
    headers += answer.headers
    headers += extra
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def error_answer(exc: CaptureError | Unavailable) -> Answer:
    status, body, headers = render_error(exc)
    return Answer(status, body, tuple((k.encode(), v.encode()) for k, v in headers.items()))


class CaptureEndpoints:
    """ASGI middleware: serves the capture paths in ``endpoints``, passes the rest to ``app``.

    Handlers are called as ``handler(request, gateway)`` with the body already read; they
    raise ``CaptureError`` for answers other than 200, and anything else they raise is logged
    and answered 500 without a traceback.
    """

    def __init__(self, app: ASGIApp, endpoints: dict[str, Endpoint]) -> None:
        self.app = app
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._endpoints.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = CaptureRequest.from_scope(scope)
        try:
            answer = await self._serve(endpoint, request, scope, receive)
        except (CaptureError, Unavailable) as exc:
            answer = error_answer(exc)
        except Exception as exc:
            log.exception("unexpected error in the capture gateway", exc_info=exc)
            answer = error_answer(CaptureError("internal error; the event was not written, retry later"))
        await send_answer(send, answer, cors_headers(request))
        telemetry.REQUEST_SECONDS.observe(time.perf_counter() - started)

    @staticmethod
    async def _serve(endpoint: Endpoint, request: CaptureRequest, scope: Scope, receive: Receive) -> Answer:
        if request.method not in endpoint.methods:
            raise MethodNotAllowed(f"{request.method} is not allowed here; use {', '.join(sorted(endpoint.methods))}")
        if request.method == "OPTIONS":
            return preflight(request, endpoint.methods)
        gateway: GatewayContext | None = getattr(scope["app"].state, "gateway", None)
        if gateway is None:
            raise ServiceUnavailable("the gateway is starting", "starting")
        request.body = await gateway.bodies.read(receive, endpoint.body_limit, request.headers.get("content-length"))
        telemetry.PAYLOAD_BYTES.observe(len(request.body))
        return await endpoint.handler(request, gateway)
