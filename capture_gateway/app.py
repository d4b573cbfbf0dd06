"""``create_app(settings)``: the capture gateway as a Starlette application.

The lifespan opens the Kafka producer, the project resolver and the quota tracker. The capture
endpoints are served by the pure ASGI middleware ``CaptureEndpoints`` (``asgi.py``: the hot
path, without Starlette's request objects); the route table is a plain list for the rest
(flags, config, health, metrics, OpenAPI). Every ``CaptureError`` becomes a JSON answer
``{status, code, error}`` (``errors.render_error``), and anything unexpected a 500 without a
traceback.
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
from starlette.responses import Response
from starlette.routing import Route

from capture_gateway import capture, ops, sdk_config, telemetry, v1
from capture_gateway.asgi import CORS_MAX_AGE, CaptureEndpoints, Endpoint
from capture_gateway.bodies import BodyReader
from capture_gateway.context import GatewayContext
from capture_gateway.errors import CaptureError, render_error
from capture_gateway.limits import HotKeys, QuotaTracker, RateLimiter
from capture_gateway.producer import KafkaProducer
from capture_gateway.publish import Publisher
from headwater.errors import Unavailable
from headwater.runtime.connections import Connections
from headwater.runtime.gc_tuning import tune_gc
from headwater.runtime.projects import ProjectResolver
from headwater.runtime.settings import Endpoints, Settings
from headwater.runtime.topology import Topology

log = logging.getLogger("headwater.gateway")

CAPTURE_METHODS = ["GET", "POST", "OPTIONS"]


def capture_endpoints() -> dict[str, Endpoint]:
    """The paths ``CaptureEndpoints`` serves, each with and without its trailing slash."""
    table: dict[str, Endpoint] = {}
    for path in capture.PATHS:
        endpoint = Endpoint(capture.capture, capture.METHODS, capture.body_limit(path))
        table[path] = table[path + "/"] = endpoint
    table[v1.PATH] = table[v1.PATH + "/"] = Endpoint(v1.analytics_events, v1.METHODS, capture.BATCH_LIMIT)
    return table


def routes() -> list[Route]:
    return [
        *(Route(p, sdk_config.flags, methods=["GET", "POST", "OPTIONS"])
          for p in ("/flags", "/flags/", "/decide", "/decide/")),
        Route("/array/{token}/config.js", sdk_config.remote_config_js),
        Route("/array/{token}/config", sdk_config.remote_config),
        Route("/_liveness", ops.liveness),
        Route("/_readiness", ops.readiness),
        Route("/metrics", ops.metrics),
        Route("/openapi.json", ops.openapi),
    ]


def _error(exc: CaptureError | Unavailable) -> Response:
    status, body, headers = render_error(exc)
    telemetry.requests_answered(status)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def on_capture_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, CaptureError | Unavailable)
    return _error(exc)


async def on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = CaptureError(str(exc.detail), "http_error")
    error.status = exc.status_code
    return _error(error)


async def on_unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error in the capture gateway", exc_info=exc)
    return _error(CaptureError("internal error; the event was not written, retry later"))


def create_app(settings: Settings, endpoints: Endpoints, topology: Topology) -> Starlette:
    """The gateway application for ``topology`` (only its ``capture`` and dead-letter topic are used).

    The CLI resolves ``endpoints`` (from the environment or the local stack); connections open
    when the ASGI server starts the app.
    """
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        producer = KafkaProducer(endpoints.kafka, settings.produce_timeout_seconds)
        connections = await Connections.open(endpoints.postgres, endpoints.redis)
        projects = ProjectResolver(connections.postgres, connections.redis, settings.token_cache_seconds)
        quotas = QuotaTracker(connections.redis)
        bodies = BodyReader(settings.body_timeout_seconds)
        await quotas.start()
        app.state.gateway = GatewayContext(
            topology=topology,
            producer=producer,
            publisher=Publisher(producer, topology.capture, topology.pipeline.dead_letter),
            projects=projects,
            rate_limiter=RateLimiter(),
            quotas=quotas,
            hot_keys=HotKeys(settings.overflow_events_per_second, settings.overflow_burst),
            trusted_proxies=frozenset(settings.trusted_proxies),
            bodies=bodies,
        )
        tune_gc()  # requests make many containers and few cycles: headwater.runtime.gc_tuning
        log.info("gateway starting on http://%s:%d: topology %s (capture to %s), Kafka %s", settings.gateway_host,
                 settings.gateway_port, settings.topology, topology.capture.topic, endpoints.kafka)
        try:
            yield
        finally:
            await bodies.close()
            await app.state.gateway.publisher.close()
            remaining = producer.close()
            if remaining:
                log.error("%d messages were still undelivered at shutdown", remaining)
            await quotas.close()
            await connections.close()

    return Starlette(
        routes=routes(),
        middleware=[  # the capture paths first: CaptureEndpoints answers their CORS itself, with the same policy
            Middleware(CaptureEndpoints, endpoints=capture_endpoints()),
            Middleware(CORSMiddleware, allow_origin_regex=".*", allow_credentials=True,
                       allow_methods=CAPTURE_METHODS, allow_headers=["*"], max_age=CORS_MAX_AGE),
        ],
        exception_handlers={CaptureError: on_capture_error, Unavailable: on_capture_error,
                            HTTPException: on_http_error, Exception: on_unexpected},
        lifespan=lifespan,
    )
