"""The steps every capture protocol shares once a request is decoded: project, limits, route, write."""

from __future__ import annotations

from collections.abc import Sequence

from capture_gateway import telemetry
from capture_gateway.asgi import CaptureRequest
from capture_gateway.context import GatewayContext
from capture_gateway.errors import PayloadTooLarge, RateLimited, Unauthorized
from capture_gateway.publish import event_size
from capture_gateway.routing import Routed, route
from headwater.errors import Unavailable
from headwater.runtime.projects import Project
from schemas.envelope import DEFAULT_MAX_BYTES as MAX_EVENT_BYTES
from schemas.events import RawEvent


def client_ip(request: CaptureRequest, trusted: frozenset[str]) -> str | None:
    """The client address; ``X-Forwarded-For`` counts only when the peer is a trusted proxy."""
    peer = request.peer
    if peer in trusted:
        forwarded = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
        for address in reversed(forwarded):
            if address not in trusted:
                return address
    return peer


async def project_of(gateway: GatewayContext, token: str) -> Project:
    project = await gateway.projects.resolve(token)  # Unavailable when neither Redis nor Postgres answers
    if project is None:
        raise Unauthorized("unknown project API token: create one with `headwater project create`", "unknown_token")
    return project


def _may_not_fit(event: RawEvent) -> bool:
    """Whether the event could pass a Kafka message at 4 bytes a character (the most UTF-8 takes)."""
    chars = (len(event["properties"]) + len(event["distinct_id"]) + len(event["event"])
             + len(event["set"] or "") + len(event["set_once"] or ""))
    return 4 * chars + 160 > MAX_EVENT_BYTES


async def accept(gateway: GatewayContext, project: Project, events: Sequence[RawEvent]) -> Routed:
    """Apply the project's limits and restrictions, write what remains, return where each went.

    Raises ``PayloadTooLarge`` when an event cannot fit one Kafka message and ``RateLimited``
    (nothing written in either case), or ``Unavailable`` (a 503) when Kafka did not acknowledge
    every message: some may have been written, and the SDK's retry is safe because sinks keep
    one row per event uuid.
    """
    too_large = next((i for i, e in enumerate(events) if _may_not_fit(e) and event_size(e) > MAX_EVENT_BYTES), None)
    if too_large is not None:
        telemetry.EVENTS_DROPPED.inc(len(events), "event_too_large")
        # name what the sender knows: the event's place in its request and its name (its uuid may be ours)
        raise PayloadTooLarge(f"event {too_large} of the request ({events[too_large]['event'][:100]!r}) is larger "
                              f"than {MAX_EVENT_BYTES} bytes, the most one Kafka message holds", "event_too_large")
    if not gateway.rate_limiter.allow(project, len(events)):
        telemetry.EVENTS_DROPPED.inc(len(events), "rate_limited")
        raise RateLimited(f"project {project.id} is over its rate limit of {project.rate_limit_per_second}/s")
    if gateway.quotas.over_quota(project):
        telemetry.EVENTS_DROPPED.inc(len(events), "quota_limited")
        return Routed(dropped=[(event, "quota_limited") for event in events])
    routed = route(events, project, gateway.hot_keys)
    if routed.dropped:
        telemetry.EVENTS_DROPPED.inc(len(routed.dropped), "event_restriction")
    if routed.overflow:
        telemetry.EVENTS_OVERFLOWED.inc(len(routed.overflow))
    try:
        await gateway.publisher.publish(routed, project.api_token)
    except Unavailable:
        telemetry.EVENTS_DROPPED.inc(routed.written, "kafka_unavailable")
        raise
    gateway.quotas.count(project, routed.written)
    telemetry.EVENTS_INGESTED.inc(routed.written)
    return routed
