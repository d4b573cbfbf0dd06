"""``create_app(settings)``: the capture gateway as a Starlette application.

The lifespan opens the Kafka producer and the project resolver; handlers are short; every
``CaptureError`` becomes a JSON answer ``{status, code, error}`` in one exception handler.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from capture_gateway import telemetry
from capture_gateway.decode import RawRequest, decode_body
from capture_gateway.errors import BadRequest, CaptureError, PayloadTooLarge, ServiceUnavailable, Unauthorized
from capture_gateway.events import CaptureContext, now_micros, request_token, split_batch, to_raw_event
from capture_gateway.producer import KafkaProducer
from capture_gateway.publish import Publisher
from headwater.projects import ProjectLookupError, ProjectResolver
from headwater.settings import Endpoints, Settings, resolve_endpoints
from streams.topology import Topology, load_topology

log = logging.getLogger("headwater.gateway")

EVENT_LIMIT = 2 * 1024 * 1024
BATCH_LIMIT = 20 * 1024 * 1024
CAPTURE_PATHS = ("/e", "/i/v0/e", "/capture", "/track", "/engage", "/batch")


@dataclass
class Gateway:
    """The gateway's connections, opened by the lifespan."""

    publisher: Publisher
    producer: KafkaProducer
    projects: ProjectResolver
    trusted_proxies: frozenset[str]


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _client_ip(request: Request, trusted: frozenset[str]) -> str | None:
    peer = request.client.host if request.client else None
    if peer in trusted:
        forwarded = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
        for address in reversed(forwarded):
            if address not in trusted:
                return address
    return peer


def _sent_at_ms(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


async def capture(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    started = time.perf_counter()
    path = request.url.path.rstrip("/")
    limit = BATCH_LIMIT if path == "/batch" else EVENT_LIMIT
    body = await _read_body(request, limit)
    telemetry.PAYLOAD_BYTES.observe(len(body))
    raw = RawRequest(
        body=body,
        query=dict(request.query_params),
        content_type=request.headers.get("content-type", ""),
        content_encoding=request.headers.get("content-encoding", ""),
    )
    if request.method == "GET" and "data" not in raw.query:
        return JSONResponse({"status": 1})  # a liveness probe by an SDK or a browser
    batch = split_batch(decode_body(raw, limit))
    token = request_token(batch)
    try:
        project = await gateway.projects.resolve(token)
    except ProjectLookupError as exc:
        raise ServiceUnavailable(str(exc), "projects_unavailable") from exc
    if project is None:
        raise Unauthorized("unknown project API token: create one with `headwater project create`",
                           "unknown_token")
    ctx = CaptureContext(
        now=now_micros(),
        ip=_client_ip(request, gateway.trusted_proxies),
        sent_at_ms=_sent_at_ms(raw.query.get("_")),
        engage=path == "/engage",
    )
    telemetry.EVENTS_RECEIVED.inc(len(batch.events))
    events = [e for e in (to_raw_event(ev, token, batch, ctx) for ev in batch.events) if e is not None]
    if len(events) < len(batch.events):
        telemetry.EVENTS_DROPPED.labels("performance_event").inc(len(batch.events) - len(events))
    if events:
        try:
            await gateway.publisher.publish(events, token, ctx.now)
        except ServiceUnavailable:
            telemetry.EVENTS_DROPPED.labels("kafka_unavailable").inc(len(events))
            raise
        telemetry.EVENTS_INGESTED.inc(len(events))
    telemetry.REQUEST_SECONDS.observe(time.perf_counter() - started)
    if raw.query.get("beacon") == "1":
        return Response(status_code=204)
    return JSONResponse({"status": "Ok"})


async def liveness(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readiness(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    topic = request.app.state.topology.capture.topic
    try:
        await gateway.producer.partitions(topic)
    except ServiceUnavailable as exc:
        return JSONResponse({"status": "unavailable", "error": exc.message}, status_code=503)
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    telemetry.PRODUCER_QUEUE.set(request.app.state.gateway.producer.queue_length())
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _error(status: int, code: str, message: str) -> JSONResponse:
    telemetry.REQUESTS.labels(str(status)).inc()
    return JSONResponse({"status": status, "code": code, "error": message}, status_code=status)


async def on_capture_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, CaptureError)
    return _error(exc.status, exc.code, exc.message)


async def on_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, "http_error", str(exc.detail))


async def on_unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error in the capture gateway", exc_info=exc)
    return _error(500, "internal_error", "internal error; the event was not written, retry later")


def _routes() -> list[Route]:
    routes = []
    for path in CAPTURE_PATHS:
        for variant in (path, path + "/"):
            routes.append(Route(variant, capture, methods=["GET", "POST"]))
    routes += [
        Route("/_liveness", liveness),
        Route("/_readiness", readiness),
        Route("/metrics", metrics),
    ]
    return routes


def create_app(settings: Settings, endpoints: Endpoints | None = None, topology: Topology | None = None) -> Starlette:
    """The gateway application; connections open when the ASGI server starts it."""
    topology = topology or load_topology(settings.topology)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ends = endpoints or resolve_endpoints(settings)
        producer = KafkaProducer(ends.kafka, settings.produce_timeout_seconds)
        projects = ProjectResolver(ends.postgres, ends.redis, settings.token_cache_seconds)
        await projects.open()
        app.state.gateway = Gateway(
            publisher=Publisher(producer, topology.capture),
            producer=producer,
            projects=projects,
            trusted_proxies=frozenset(settings.trusted_proxies),
        )
        try:
            yield
        finally:
            remaining = producer.close()
            if remaining:
                log.error("%d messages were still undelivered at shutdown", remaining)
            await projects.close()

    app = Starlette(
        routes=_routes(),
        middleware=[Middleware(CORSMiddleware, allow_origin_regex=".*", allow_credentials=True,
                               allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"])],
        exception_handlers={CaptureError: on_capture_error, HTTPException: on_http_error,
                            Exception: on_unexpected},
        lifespan=lifespan,
    )
    app.state.topology = topology
    return app


__all__ = ["BadRequest", "create_app"]
