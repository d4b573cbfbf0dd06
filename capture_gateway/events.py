"""Per-event capture rules (docs/ingestion.md, "At capture"): payload JSON → ``RawEvent`` records.

Pure functions of the payload and the request's context, so they are tested without a server.
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid as uuidlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import orjson

from capture_gateway.errors import BadRequest, Unauthorized
from headwater.runtime.projects import token_problem
from schemas.events import RawEvent

MAX_DISTINCT_ID = 200
MAX_FUTURE_MICROS = 23 * 3600 * 1_000_000
MAX_OFFSET_MS = 10 * 365 * 86_400_000  # an offset beyond ten years is garbage, not a delay
MAX_SENT_AT_MS = 4_102_444_800_000  # 2100-01-01: a larger `_` is not a time
DROPPED_EVENTS = frozenset({"$performance_event"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass
class Batch:
    """The events of one request and what the request says about all of them."""

    events: list[dict[str, Any]]
    token: str | None
    sent_at: Any
    historical_migration: bool

    @cached_property
    def sent_at_micros(self) -> int | None:
        """The batch-level ``sent_at``, parsed once for all its events."""
        return _plausible_sent_at(parse_time(self.sent_at))


@dataclass(slots=True)
class CaptureContext:
    """What the server knows about a request: when it arrived and from where."""

    now: int  # microseconds since the epoch
    ip: str | None
    sent_at_ms: int | None  # the legacy `_` query parameter
    engage: bool


def now_micros() -> int:
    return time.time_ns() // 1000


def uuid7() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, version 7, variant, 74 random bits.

    The random bits come from ``random`` (reseeded from the OS in every forked process), not
    ``os.urandom``: a system call per event cost more than the rest of the UUID. A UUID here
    must be unique, not unguessable.
    """
    ms = time.time_ns() // 1_000_000
    rand = random.getrandbits(74)
    value = ((ms & 0xFFFFFFFFFFFF) << 80) | (0x7 << 76) | (((rand >> 62) & 0xFFF) << 64) | (0b10 << 62)
    value |= rand & 0x3FFFFFFFFFFFFFFF
    h = f"{value:032x}"  # formatting by hand: uuid.UUID() costs more than the rest together
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def split_batch(payload: Any) -> Batch:
    """Body shapes, in PostHog's order: array of events, batch object, single event."""
    if isinstance(payload, list):
        if not payload:
            raise BadRequest("the body holds no events", "empty_batch")
        return Batch(payload, None, None, False)
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object or array of events")
    if "batch" in payload:
        events = payload["batch"]
        if not isinstance(events, list):
            raise BadRequest("'batch' must be an array of events")
        if not events:
            raise BadRequest("the batch holds no events", "empty_batch")
        token = payload.get("api_key") or payload.get("token")
        return Batch(events, token, payload.get("sent_at"), bool(payload.get("historical_migration")))
    return Batch([payload], None, payload.get("sent_at"), False)


HOW_TO_SEND_A_TOKEN = "send api_key in the body (or token in properties)"  # noqa: S105 - advice, not a secret


def check_token(token: object, how: str = HOW_TO_SEND_A_TOKEN) -> str:
    """A token of the right shape, or ``Unauthorized`` (saying ``how`` to send one when there is none)."""
    if not isinstance(token, str) or not token.strip():
        raise Unauthorized(f"no project API token: {how}", "missing_token")
    token = token.strip()
    problem = token_problem(token)
    if problem is not None:
        code, message = problem
        raise Unauthorized(message, code)
    return token


def request_token(batch: Batch) -> str:
    """The one token of a request: batch-level, else per event; every event must agree."""
    if batch.token:
        return check_token(batch.token)
    found: set[str] = set()
    for event in batch.events:
        if isinstance(event, dict):
            props = event.get("properties")
            token = event.get("token") or event.get("$token") or event.get("api_key")
            if not token and isinstance(props, dict):
                token = props.get("token")
            if token:
                found.add(check_token(token))
    if not found:
        return check_token(None)
    if len(found) > 1:
        raise BadRequest("the events of one request carry different tokens", "multiple_tokens")
    return found.pop()


def _distinct_id(event: dict[str, Any], props: dict[str, Any]) -> str:
    value = event.get("distinct_id")
    if value is None or value == "":
        value = event.get("$distinct_id")
    if value is None or value == "":
        value = props.get("distinct_id")
    if value is None or value == "":
        raise BadRequest("every event needs a distinct_id", "missing_distinct_id")
    text = value if isinstance(value, str) else dumps(value, "distinct_id")
    if not text.strip():
        raise BadRequest("every event needs a non-empty distinct_id", "missing_distinct_id")
    return text.replace("\x00", "\ufffd")[:MAX_DISTINCT_ID]


def _plausible_sent_at(micros: int | None) -> int | None:
    return micros if micros is not None and 0 < micros < MAX_SENT_AT_MS * 1000 else None


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(event: dict[str, Any]) -> str:
    value = event.get("uuid")
    if value is None or value == "":
        return uuid7()
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value  # the common case: already canonical, no need to parse
    try:
        return str(uuidlib.UUID(str(value)))
    except ValueError:
        raise BadRequest(f"invalid uuid {str(value)[:64]!r}", "invalid_uuid") from None


def parse_time(value: Any) -> int | None:
    """Microseconds since the epoch from RFC 3339, a date, or epoch seconds/milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return _text_time(value.strip())
    if isinstance(value, int | float):
        return _number_time(value)
    return None


def _text_time(text: str) -> int | None:
    try:
        parsed: datetime | None = datetime.fromisoformat(text)  # Python 3.11 reads RFC 3339, "Z" too
    except ValueError:
        parsed = None
    if parsed is None or text.isdigit():  # "20261122" is a date to fromisoformat; here, epoch time
        try:
            return _number_time(float(text))
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - EPOCH) // ONE_MICROSECOND


def _number_time(value: float) -> int | None:
    if math.isnan(value) or abs(value) > 1e15:
        return None
    seconds = value / 1000 if abs(value) > 1e11 else value
    return int(seconds * 1_000_000)


def _timestamp(event: dict[str, Any], props: dict[str, Any], sent_at: int | None,
               ctx: CaptureContext, warnings: list[str]) -> int:
    """Clock-skew correction: ``now + (timestamp - sent_at)``, ``now - offset``, clamp the future."""
    now = ctx.now
    raw = event.get("timestamp")
    ts = parse_time(raw)
    if raw is not None and ts is None:
        warnings.append("ignored_invalid_timestamp")
    offset = event.get("offset")
    if isinstance(offset, int | float) and not isinstance(offset, bool) and abs(offset) < MAX_OFFSET_MS:
        result = now - int(offset * 1000)
    elif ts is None:
        result = now
    elif sent_at is not None and not props.get("$ignore_sent_at"):
        result = now + (ts - sent_at)
    else:
        result = ts
    if result - now > MAX_FUTURE_MICROS:
        warnings.append("event_timestamp_in_future")
        result = now
    elif result < 0:  # before 1970: a broken clock, or an offset/sent_at far off
        warnings.append("ignored_invalid_timestamp")
        result = now
    return result


def dumps(value: Any, what: str) -> str:
    """JSON text of a value from the request; nesting orjson cannot write back is a 400."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:  # "Recursion limit reached" past 254 levels
        raise BadRequest(f"{what} is nested too deeply ({exc})", "invalid_payload") from exc


def _json_object(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return dumps(value, what)


def to_raw_event(event: Any, token: str, batch: Batch, ctx: CaptureContext) -> RawEvent | None:
    """One event of the request as a ``RawEvent``; None for events PostHog drops silently."""
    if not isinstance(event, dict):
        raise BadRequest("every event must be a JSON object")
    name = event.get("event")
    if name is None and ctx.engage:
        name = "$identify"
    if not isinstance(name, str) or not name:
        raise BadRequest("every event needs a non-empty 'event' name", "missing_event")
    if name in DROPPED_EVENTS:
        return None
    props = event.get("properties") or {}
    if not isinstance(props, dict):
        raise BadRequest("'properties' must be a JSON object")
    warnings: list[str] = []
    sent_at = _plausible_sent_at(parse_time(event["sent_at"])) if "sent_at" in event else batch.sent_at_micros
    if sent_at is None and ctx.sent_at_ms is not None:
        sent_at = ctx.sent_at_ms * 1000
    return RawEvent(
        uuid=_uuid(event),
        event=name,
        distinct_id=_distinct_id(event, props),
        token=token,
        timestamp=_timestamp(event, props, sent_at, ctx, warnings),
        now=ctx.now,
        sent_at=sent_at,
        ip=ctx.ip,
        properties=dumps(props, "properties"),
        set=_json_object(event.get("$set"), "$set"),
        set_once=_json_object(event.get("$set_once"), "$set_once"),
        historical_migration=batch.historical_migration,
        capture_warnings=warnings,
        skip_person_processing=False,
    )
