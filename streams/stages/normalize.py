"""``normalize``: PostHog's property rules before persons (docs/ingestion.md).

Top-level ``$set``/``$set_once`` move into properties (``fold_person_updates``); ``$ip`` is set
from the client address (unless present); ``sent_at`` is copied to ``$sent_at``; for events
that process persons, the keys below present on the event are added to ``$set`` (unless set
explicitly) and as ``$initial_<key>`` to ``$set_once``.

``merge_person_updates`` is the one rule for how an event's person updates combine: the plugin
adapter (``streams.plugins.stage``) applies it too, so a plugin's ``event.set`` takes effect
wherever the plugin runs, before or after this stage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from streams.event import PipelineEvent
from streams.stages.base import EventStage, Ok, Outcome
from streams.stages.registry import NoConfig, register_stage

PERSON_KEYS = (
    "$browser", "$browser_version", "$os", "$os_version", "$device_type", "$current_url", "$pathname",
    "$referrer", "$referring_domain", "$app_name", "$app_version", "$screen_height", "$screen_width",
    "$viewport_height", "$viewport_width",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term",
    "gclid", "fbclid", "msclkid", "twclid", "li_fat_id", "mc_cid", "igshid", "ttclid",
)


@lru_cache(maxsize=4096)  # the events of one request share their sent_at
def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def merge_person_updates(props: dict[str, Any], set_: dict[str, Any], set_once: dict[str, Any]) -> None:
    """Merge ``set_``/``set_once`` over ``props["$set"]``/``props["$set_once"]``; their keys win.

    PostHog's rule for an event's top-level ``$set`` against ``properties.$set``. Empty updates
    leave ``props`` as it is; a ``$set`` property that is not an object is replaced.
    """
    for key, update in (("$set", set_), ("$set_once", set_once)):
        if update:
            current = props.get(key)
            props[key] = {**current, **update} if isinstance(current, dict) else dict(update)


def _decoded(encoded: str | None) -> dict[str, Any]:
    value = orjson.loads(encoded) if encoded else None
    return value if isinstance(value, dict) else {}


def fold_person_updates(event: PipelineEvent) -> None:
    """Move the event's top-level ``$set``/``$set_once`` into its properties, then clear them.

    Idempotent: once folded, the raw fields are empty, so folding again (normalize after a
    plugin stage did it, a retried stage) changes nothing.
    """
    raw = event.raw
    if raw["set"] or raw["set_once"]:
        merge_person_updates(event.properties, _decoded(raw["set"]), _decoded(raw["set_once"]))
        raw["set"] = raw["set_once"] = None


def _initial_name(key: str) -> str:
    return "$initial_" + key.removeprefix("$")


_PERSON_KEYS_AND_INITIALS = tuple((key, _initial_name(key)) for key in PERSON_KEYS)


class Normalize(EventStage):
    def process(self, event: PipelineEvent) -> Outcome:
        fold_person_updates(event)
        raw, props = event.raw, event.properties
        if raw["ip"] and "$ip" not in props:
            props["$ip"] = raw["ip"]
        if raw["sent_at"] is not None and "$sent_at" not in props:
            props["$sent_at"] = _iso(raw["sent_at"])
        if event.processes_person:
            present = [(key, initial) for key, initial in _PERSON_KEYS_AND_INITIALS if key in props]
            if present:
                current = props.get("$set")
                to_set = current if isinstance(current, dict) else {}
                current = props.get("$set_once")
                to_set_once = current if isinstance(current, dict) else {}
                for key, initial in present:
                    value = props[key]
                    if key not in to_set:
                        to_set[key] = value
                    if initial not in to_set_once:
                        to_set_once[initial] = value
                props["$set"], props["$set_once"] = to_set, to_set_once
        return Ok(event)

register_stage(
    "normalize", NoConfig, lambda name, _config, _resources: Normalize(name),
    "$set/$set_once into properties, $ip, $sent_at, $initial_* keys.",
)
