"""The v1 capture protocol: ``POST /i/v1/analytics/events`` with a result per event.

``Authorization: Bearer <project token>``; body ``{created_at, historical_migration?, batch}``
(gzip, deflate or zstd by ``Content-Encoding``). Each event is checked on its own: a bad one
gets ``{"result": "drop", "details": …}`` and the others are written. The answer is 200
``{"results": {"<uuid>": {"result": "ok"}}}`` once Kafka has every written event; a Kafka
failure is a 503 for the whole request (the SDK retries; uuids make that safe downstream).
"""

from __future__ import annotations

from typing import Any

import orjson

from capture_gateway import telemetry
from capture_gateway.asgi import Answer, CaptureRequest
from capture_gateway.capture import BATCH_LIMIT
from capture_gateway.context import GatewayContext
from capture_gateway.decode import RawRequest, decode_body
from capture_gateway.errors import BadRequest, UnsupportedMediaType
from capture_gateway.events import Batch, CaptureContext, check_token, now_micros, to_raw_event
from capture_gateway.ingest import accept, client_ip, project_of
from schemas.events import RawEvent

PATH = "/i/v1/analytics/events"
METHODS = frozenset({"POST", "OPTIONS"})
ENCODINGS = {"", "identity", "gzip", "deflate", "zstd"}


def _bearer(request: CaptureRequest) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return check_token(token if scheme.lower() == "bearer" else None,
                       "send the header Authorization: Bearer <project API token>")


def _sdk_info(header: str) -> tuple[str, str] | None:
    """``posthog-python/7.91.1`` → ``("posthog-python", "7.91.1")``."""
    lib, sep, version = header.strip().rpartition("/")
    return (lib, version) if sep and lib and version else None


def _as_v0_event(event: Any, sdk: tuple[str, str] | None) -> Any:
    """Fold v1's ``options``, lifted fields and the SDK header back into the properties the pipeline reads."""
    if not isinstance(event, dict):
        return event
    props = event.get("properties")
    options = event.get("options")
    if not isinstance(options, dict):
        options = {}
    if isinstance(props, dict):
        props = dict(props)
        if options.get("process_person_profile") is False:
            props["$process_person_profile"] = False
        if options.get("disable_skew_correction"):
            props["$ignore_sent_at"] = True
        for field in ("session_id", "window_id"):
            if event.get(field) is not None:
                props.setdefault(f"${field}", event[field])
        if sdk is not None:  # v1 SDKs strip $lib from properties and send it in PostHog-Sdk-Info
            props.setdefault("$lib", sdk[0])
            props.setdefault("$lib_version", sdk[1])
    return {**event, "properties": props}


async def analytics_events(request: CaptureRequest, gateway: GatewayContext) -> Answer:
    token = _bearer(request)
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding not in ENCODINGS:
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported (gzip, deflate, zstd)")
    raw = RawRequest(body=request.body, query={}, content_type=request.headers.get("content-type", ""),
                     content_encoding=encoding)
    payload = decode_body(raw, BATCH_LIMIT)
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise BadRequest("the body must be an object with a batch: {\"batch\": [...]} "
                         "(created_at and historical_migration are optional)")
    project = await project_of(gateway, token)
    batch = Batch(payload["batch"], token, payload.get("created_at"), bool(payload.get("historical_migration")))
    ctx = CaptureContext(
        now=now_micros(),
        ip=None if project.discard_client_ip else client_ip(request, gateway.trusted_proxies),
        sent_at_ms=None,
        engage=False,
    )
    telemetry.EVENTS_RECEIVED.inc(len(batch.events))
    sdk = _sdk_info(request.headers.get("posthog-sdk-info", ""))
    results: dict[str, dict[str, str]] = {}
    accepted: list[RawEvent] = []
    for event in batch.events:
        given_uuid = str(event.get("uuid", "")) if isinstance(event, dict) else ""
        try:
            converted = to_raw_event(_as_v0_event(event, sdk), token, batch, ctx)
        except BadRequest as exc:
            telemetry.EVENTS_DROPPED.inc(1, exc.code)
            results[given_uuid or f"invalid-{len(results)}"] = {"result": "drop", "details": exc.message}
            continue
        if converted is None:
            results[given_uuid] = {"result": "drop", "details": "event type is not ingested"}
            continue
        accepted.append(converted)
    if accepted:
        routed = await accept(gateway, project, accepted)
        for written in accepted:
            results[written["uuid"]] = {"result": "ok"}
        for dropped, cause in routed.dropped:
            results[dropped["uuid"]] = {"result": "limited" if cause == "quota_limited" else "drop", "details": cause}
    return Answer(200, orjson.dumps({"results": results}))
