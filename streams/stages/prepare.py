"""``prepare``: shapes the event's properties the way PostHog stores them.

Until the normalize stage exists it carries top-level ``$set``/``$set_once`` into properties
and sets ``$ip`` and ``$sent_at`` (REFERENCE §4, Normalize).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from streams.event import PipelineEvent
from streams.stages.base import Ok, Outcome


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def _merge(props: dict[str, Any], key: str, encoded: str | None) -> None:
    if not encoded:
        return
    current = props.get(key)
    props[key] = {**(current if isinstance(current, dict) else {}), **orjson.loads(encoded)}


class Prepare:
    def __init__(self, name: str) -> None:
        self.name = name

    async def process(self, event: PipelineEvent) -> Outcome:
        raw, props = event.raw, event.properties
        _merge(props, "$set", raw["set"])
        _merge(props, "$set_once", raw["set_once"])
        if raw["ip"] and "$ip" not in props:
            props["$ip"] = raw["ip"]
        if raw["sent_at"] is not None and "$sent_at" not in props:
            props["$sent_at"] = _iso(raw["sent_at"])
        return Ok(event)
