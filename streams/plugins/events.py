"""``Event``, the one shape plugins and agents see, from and to the records on Headwater's topics.

- a pipeline event (``PipelineEvent``) for a plugin stage: ``to_plugin_event`` on the way in,
  ``apply_plugin_event`` (or ``give_back`` when the plugin failed) on the way out;
- a raw record (a capture topic) or a processed row (the pipeline's output) for an agent:
  ``from_raw``, ``from_processed``.

Person updates always arrive as ``Event.set``/``Event.set_once``, never inside ``properties``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.events import ProcessedEvent, RawEvent
from streams.event import PipelineEvent
from streams.plugins.api import Event
from streams.stages.normalize import fold_person_updates, merge_person_updates


def _take(props: dict[str, Any], key: str) -> dict[str, Any]:
    value = props.get(key)
    if not isinstance(value, dict):
        return {}
    del props[key]
    return value


def _moment(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def to_plugin_event(event: PipelineEvent) -> Event:
    """The event as a plugin sees it. Moves the person updates out of ``event.properties``
    (``apply_plugin_event`` puts them back)."""
    raw = event.raw
    fold_person_updates(event)
    props = event.properties
    return Event(
        uuid=raw["uuid"], event=raw["event"], distinct_id=raw["distinct_id"], properties=props,
        timestamp=_moment(raw["timestamp"]), team_id=event.team_id, ip=raw["ip"],
        set=_take(props, "$set"), set_once=_take(props, "$set_once"),
    )


def give_back(event: PipelineEvent, sent: Event) -> None:
    """Put the person updates ``to_plugin_event`` took out back: the event may be tried again."""
    merge_person_updates(event.properties, sent.set, sent.set_once)


def apply_plugin_event(event: PipelineEvent, result: Event) -> None:
    """Write what the plugin returned back into the pipeline event."""
    raw = event.raw
    raw["event"] = result.event
    raw["distinct_id"] = result.distinct_id
    raw["timestamp"] = int(result.timestamp.timestamp() * 1_000_000)
    raw["ip"] = result.ip
    merge_person_updates(result.properties, result.set, result.set_once)
    event.properties = result.properties


def from_raw(record: RawEvent, topic: str) -> Event:
    """A captured event as it arrived (no project yet: ``team_id`` is None), as an agent sees it."""
    return to_plugin_event(PipelineEvent.from_raw(record, topic))


def from_processed(row: ProcessedEvent) -> Event:
    """A processed event (a row of ``events``) as an agent sees it, with its person."""
    props = orjson.loads(row["properties"]) if row["properties"] else {}
    if not isinstance(props, dict):
        props = {}
    ip = props.get("$ip")
    person = orjson.loads(row["person_properties"]) if row["person_properties"] else {}
    return Event(
        uuid=row["uuid"], event=row["event"], distinct_id=row["distinct_id"], properties=props,
        timestamp=_moment(row["timestamp"]), team_id=row["team_id"], ip=ip if isinstance(ip, str) else None,
        set=_take(props, "$set"), set_once=_take(props, "$set_once"),
        person_id=row["person_id"], person_properties=person if isinstance(person, dict) else {},
    )
