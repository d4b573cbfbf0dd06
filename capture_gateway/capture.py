"""The v0 capture endpoints (``/e``, ``/i/v0/e``, ``/capture``, ``/track``, ``/engage``, ``/batch``)."""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from capture_gateway import telemetry
from capture_gateway.context import GatewayContext
from capture_gateway.decode import RawRequest, decode_body
from capture_gateway.errors import BadRequest
from capture_gateway.events import (
    MAX_SENT_AT_MS,
    Batch,
    CaptureContext,
    now_micros,
    request_token,
    split_batch,
    to_raw_event,
)
from capture_gateway.ingest import accept, client_ip, project_of, read_body
from schemas.events import RawEvent

EVENT_LIMIT = 2 * 1024 * 1024
BATCH_LIMIT = 20 * 1024 * 1024
LARGE_BODY = 256 * 1024
LARGE_BATCH = 1000
PATHS = ("/e", "/i/v0/e", "/capture", "/track", "/engage", "/batch")


def _sent_at_ms(value: str | None) -> int | None:
    """The legacy ``_`` query parameter (send time in ms); None unless it is a plausible time."""
    try:
        ms = int(value) if value else None
    except ValueError:
        return None
    return ms if ms is not None and 0 < ms < MAX_SENT_AT_MS else None


def _convert(batch: Batch, token: str, ctx: CaptureContext) -> list[RawEvent]:
    return [e for e in (to_raw_event(ev, token, batch, ctx) for ev in batch.events) if e is not None]


async def capture(request: Request) -> Response:
    """Decode, check, route and write a v0 request; 200 ``{"status": "Ok"}`` once Kafka has it all."""
    gateway: GatewayContext = request.app.state.gateway
    started = time.perf_counter()
    path = request.url.path.rstrip("/")
    limit = BATCH_LIMIT if path == "/batch" else EVENT_LIMIT
    body = await read_body(request, limit, gateway.body_timeout)
    telemetry.PAYLOAD_BYTES.observe(len(body))
    raw = RawRequest(
        body=body,
        query=dict(request.query_params),
        content_type=request.headers.get("content-type", ""),
        content_encoding=request.headers.get("content-encoding", ""),
    )
    if request.method == "GET" and not body and "data" not in raw.query:
        raise BadRequest("no payload: send events in the body (POST) or in the data query parameter", "missing_data")
    # A large body takes long to inflate and parse: do it off the event loop so health checks
    # and small requests keep being answered meanwhile.
    large = len(body) > LARGE_BODY
    payload = await asyncio.to_thread(decode_body, raw, limit) if large else decode_body(raw, limit)
    batch = split_batch(payload)
    token = request_token(batch)
    project = await project_of(gateway, token)
    ctx = CaptureContext(
        now=now_micros(),
        ip=None if project.discard_client_ip else client_ip(request, gateway.trusted_proxies),
        sent_at_ms=_sent_at_ms(raw.query.get("_")),
        engage=path == "/engage",
    )
    telemetry.EVENTS_RECEIVED.inc(len(batch.events))
    if large or len(batch.events) > LARGE_BATCH:
        events = await asyncio.to_thread(_convert, batch, token, ctx)
    else:
        events = _convert(batch, token, ctx)
    if len(events) < len(batch.events):
        telemetry.EVENTS_DROPPED.labels("performance_event").inc(len(batch.events) - len(events))
    if events:
        await accept(gateway, project, events, ctx.now)
    telemetry.REQUEST_SECONDS.observe(time.perf_counter() - started)
    telemetry.REQUESTS.labels("200").inc()
    if raw.query.get("beacon") == "1":
        return Response(status_code=204)
    return JSONResponse({"status": "Ok"})
