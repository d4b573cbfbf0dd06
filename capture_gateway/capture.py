"""The v0 capture endpoints (``/e``, ``/i/v0/e``, ``/capture``, ``/track``, ``/engage``, ``/batch``)."""

from __future__ import annotations

import asyncio

from capture_gateway import telemetry
from capture_gateway.asgi import Answer, CaptureRequest
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
from capture_gateway.ingest import accept, client_ip, project_of
from schemas.events import RawEvent

EVENT_LIMIT = 2 * 1024 * 1024
BATCH_LIMIT = 20 * 1024 * 1024
LARGE_BODY = 256 * 1024
LARGE_BATCH = 1000
PATHS = ("/e", "/i/v0/e", "/capture", "/track", "/engage", "/batch")
METHODS = frozenset({"GET", "POST", "OPTIONS"})
OK = Answer(200, b'{"status":"Ok"}')
BEACON = Answer(204)


def body_limit(path: str) -> int:
    """2 MB per request on the per-event paths, 20 MB on ``/batch``."""
    return BATCH_LIMIT if path.rstrip("/") == "/batch" else EVENT_LIMIT


def _sent_at_ms(value: str | None) -> int | None:
    """The legacy ``_`` query parameter (send time in ms); None unless it is a plausible time."""
    try:
        ms = int(value) if value else None
    except ValueError:
        return None
    return ms if ms is not None and 0 < ms < MAX_SENT_AT_MS else None


def _convert(batch: Batch, token: str, ctx: CaptureContext) -> list[RawEvent]:
    return [e for e in (to_raw_event(ev, token, batch, ctx) for ev in batch.events) if e is not None]


async def capture(request: CaptureRequest, gateway: GatewayContext) -> Answer:
    """Decode, check, route and write a v0 request; 200 ``{"status": "Ok"}`` once Kafka has it all."""
    body, query = request.body, request.query
    raw = RawRequest(body=body, query=query, content_type=request.headers.get("content-type", ""),
                     content_encoding=request.headers.get("content-encoding", ""))
    if request.method == "GET" and not body and "data" not in query:
        raise BadRequest("no payload: send events in the body (POST) or in the data query parameter", "missing_data")
    limit = body_limit(request.path)
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
        sent_at_ms=_sent_at_ms(query.get("_")),
        engage=request.path.startswith("/engage"),
    )
    telemetry.EVENTS_RECEIVED.inc(len(batch.events))
    if large or len(batch.events) > LARGE_BATCH:
        events = await asyncio.to_thread(_convert, batch, token, ctx)
    else:
        events = _convert(batch, token, ctx)
    if len(events) < len(batch.events):
        telemetry.EVENTS_DROPPED.inc(len(batch.events) - len(events), "performance_event")
    if events:
        await accept(gateway, project, events)
    return BEACON if query.get("beacon") == "1" else OK
