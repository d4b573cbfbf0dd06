"""The ops page's web app: the page, its own static files, and the JSON it polls. Read-only.

Routes (all GET): ``/`` the page; ``/static/…`` its script and style sheet (shipped in the
package: the page loads nothing from anywhere else, so it works offline); ``/api/state`` the
latest state (lag report, stages, sinks, freshness, dead letters); ``/api/history?since=T`` the
chart points after time T; ``/api/topology`` the laid-out graph; ``/_liveness``. Any other method
is answered 405 before it reaches a route: nothing on the page can change the pipeline. The
Content-Security-Policy lets the page load and fetch only from itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.ops.page.history import History

STATIC = Path(str(files("headwater.ops.page") / "static"))
READ_ONLY = frozenset({"GET", "HEAD"})
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class StateSource(Protocol):
    """What the app serves (``headwater.ops.page.collector.Collector``)."""

    history: History

    def state(self) -> dict[str, Any]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ReadOnly:
    """ASGI middleware: 405 for any method but GET and HEAD; the security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in READ_ONLY:
            response = PlainTextResponse("the ops page is read-only\n", status_code=405,
                                         headers={"Allow": "GET, HEAD"})
            await response(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        return sending


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def create_app(source: StateSource, topology: dict[str, Any], *, manage: bool = True) -> ASGIApp:
    """The ops page over ``source``; ``topology``: ``{"app_id", "graph": graph.layout(...)}``.
    With ``manage``, the app starts ``source`` on start-up and stops it on shutdown."""
    page = (STATIC / "index.html").read_text()

    async def index(_: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def state(_: Request) -> Response:
        return _json(source.state())

    async def history(request: Request) -> Response:
        try:
            since = float(request.query_params.get("since", "0"))
        except ValueError:
            return PlainTextResponse("since: a number of seconds (a point's `at`)\n", status_code=400)
        return _json(source.history.to_json(since))

    async def graph(_: Request) -> Response:
        return _json(topology)

    async def liveness(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage:
            source.start()
        try:
            yield
        finally:
            if manage:
                source.stop()

    app = Starlette(routes=[
        Route("/", index, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/history", history, methods=["GET"]),
        Route("/api/topology", graph, methods=["GET"]),
        Route("/_liveness", liveness, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    return ReadOnly(app)
