"""``normalize``: PostHog's property rules before persons (REFERENCE §4, Normalize).

Top-level ``$set``/``$set_once`` move into properties; ``$ip`` is set from the client address
(unless present); ``sent_at`` is copied to ``$sent_at``; for events that process persons, the
keys below present on the event are added to ``$set`` (unless set explicitly) and as
``$initial_<key>`` to ``$set_once``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from streams.event import PipelineEvent
from streams.stages.base import BaseStage, Ok, Outcome
from streams.stages.registry import NoConfig, register_stage

PERSON_KEYS = (
    "$browser", "$browser_version", "$os", "$os_version", "$device_type", "$current_url", "$pathname",
    "$referrer", "$referring_domain", "$app_name", "$app_version", "$screen_height", "$screen_width",
    "$viewport_height", "$viewport_width",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
    "gclid", "fbclid", "msclkid", "twclid", "li_fat_id", "mc_cid", "igshid", "ttclid",
)


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def _merge(props: dict[str, Any], key: str, encoded: str | None) -> None:
    if not encoded:
        return
    current = props.get(key)
    props[key] = {**(current if isinstance(current, dict) else {}), **orjson.loads(encoded)}


def _initial_name(key: str) -> str:
    return "$initial_" + key.removeprefix("$")


class Normalize(BaseStage):
    async def process(self, event: PipelineEvent) -> Outcome:
        raw, props = event.raw, event.properties
        _merge(props, "$set", raw["set"])
        _merge(props, "$set_once", raw["set_once"])
        if raw["ip"] and "$ip" not in props:
            props["$ip"] = raw["ip"]
        if raw["sent_at"] is not None and "$sent_at" not in props:
            props["$sent_at"] = _iso(raw["sent_at"])
        if event.processes_person:
            present = [key for key in PERSON_KEYS if key in props]
            if present:
                to_set = props["$set"] if isinstance(props.get("$set"), dict) else {}
                to_set_once = props["$set_once"] if isinstance(props.get("$set_once"), dict) else {}
                for key in present:
                    to_set.setdefault(key, props[key])
                    to_set_once.setdefault(_initial_name(key), props[key])
                props["$set"], props["$set_once"] = to_set, to_set_once
        return Ok(event)

register_stage(
    "normalize", NoConfig, lambda name, _config, _resources: Normalize(name),
    "$set/$set_once into properties, $ip, $sent_at, $initial_* keys.",
)
