"""``create_app(settings)``: the capture gateway as a Starlette application.

The lifespan opens the Kafka producer, the project resolver and the quota tracker; the route
table is a plain list; every ``CaptureError`` becomes a JSON answer ``{status, code, error}``
in one exception handler, and anything unexpected a 500 without a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from capture_gateway import ops, sdk_config, telemetry
from capture_gateway.capture import PATHS, capture
from capture_gateway.context import GatewayContext
from capture_gateway.errors import CaptureError, RateLimited
from capture_gateway.limits import HotKeys, QuotaTracker, RateLimiter
from capture_gateway.producer import KafkaProducer
from capture_gateway.publish import Publisher
from capture_gateway.v1 import analytics_events
from headwater.projects import ProjectResolver
from headwater.settings import Endpoints, Settings, resolve_endpoints
from streams.topology import Topology, load_topology

log = logging.getLogger("headwater.gateway")

CAPTURE_METHODS = ["GET", "POST", "OPTIONS"]


def routes() -> list[Route]:
    table = [Route(variant, capture, methods=CAPTURE_METHODS) for path in PATHS for variant in (path, path + "/")]
    table += [
        Route("/i/v1/analytics/events", analytics_events, methods=["POST", "OPTIONS"]),
        Route("/i/v1/analytics/events/", analytics_events, methods=["POST", "OPTIONS"]),
        *(Route(p, sdk_config.flags, methods=["GET", "POST", "OPTIONS"])
          for p in ("/flags", "/flags/", "/decide", "/decide/")),
        Route("/array/{token}/config.js", sdk_config.remote_config_js),
        Route("/array/{token}/config", sdk_config.remote_config),
        Route("/_liveness", ops.liveness),
        Route("/_readiness", ops.readiness),
        Route("/metrics", ops.metrics),
        Route("/openapi.json", ops.openapi),
    ]
    return table


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    telemetry.REQUESTS.labels(str(status)).inc()
    return JSONResponse({"status": status, "code": code, "error": message}, status_code=status, headers=headers)


async def on_capture_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, CaptureError)
    headers = {"Retry-After": "1"} if isinstance(exc, RateLimited) else None
    return _error(exc.status, exc.code, exc.message, headers)


async def on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, "http_error", str(exc.detail))


async def on_unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error in the capture gateway", exc_info=exc)
    return _error(500, "internal_error", "internal error; the event was not written, retry later")


def create_app(settings: Settings, endpoints: Endpoints | None = None, topology: Topology | None = None) -> Starlette:
    """The gateway application; connections open when the ASGI server starts it."""
    topo = topology or load_topology(settings.topology)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ends = endpoints or resolve_endpoints(settings)
        producer = KafkaProducer(ends.kafka, settings.produce_timeout_seconds)
        projects = ProjectResolver(ends.postgres, ends.redis, settings.token_cache_seconds)
        quotas = QuotaTracker(ends.redis)
        await projects.open()
        await quotas.start()
        app.state.gateway = GatewayContext(
            topology=topo,
            producer=producer,
            publisher=Publisher(producer, topo.capture, topo.pipeline.dead_letter),
            projects=projects,
            rate_limiter=RateLimiter(),
            quotas=quotas,
            hot_keys=HotKeys(settings.overflow_events_per_second, settings.overflow_burst),
            trusted_proxies=frozenset(settings.trusted_proxies),
            body_timeout=settings.body_timeout_seconds,
        )
        try:
            yield
        finally:
            remaining = producer.close()
            if remaining:
                log.error("%d messages were still undelivered at shutdown", remaining)
            await quotas.close()
            await projects.close()

    return Starlette(
        routes=routes(),
        middleware=[Middleware(CORSMiddleware, allow_origin_regex=".*", allow_credentials=True,
                               allow_methods=CAPTURE_METHODS, allow_headers=["*"], max_age=3600)],
        exception_handlers={CaptureError: on_capture_error, HTTPException: on_http_error, Exception: on_unexpected},
        lifespan=lifespan,
    )
