"""The event as stages see it: the raw record plus what stages learned about it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from headwater.runtime.projects import Project
from schemas.events import ProcessedEvent, RawEvent
from streams.errors import StageError

MAX_EVENT_NAME = 200
PERSON_NAMESPACE = uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22")


Partition = tuple[str, int]
"""A source topic's partition: ``(topic, partition)``."""


Order = tuple[int, int]
"""An event's place in its partition: its envelope's offset, then its index in the envelope."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where an event was read: its envelope's topic, partition and offset, and its index in the envelope."""

    topic: str
    partition: int
    offset: int
    index: int = 0

    @property
    def key(self) -> Partition:
        return self.topic, self.partition

    @property
    def order(self) -> Order:
        return self.offset, self.index


@dataclass(frozen=True)
class Warning:
    """An ingestion warning: written at most once per (team, type, key) an hour."""

    type: str
    key: str
    details: dict[str, Any]


@dataclass(slots=True)
class EventPerson:
    """The person an event leaves with (set by the ``persons`` stage): its row in ``events`` carries it."""

    uuid: str
    properties_json: str
    created_at: int


@dataclass
class PipelineEvent:
    """One event on its way through the stages.

    ``properties`` is parsed once and mutated in place by stages; ``team_id`` and ``project``
    are set by the ``resolve_project`` stage, ``person`` and ``groups`` by ``persons``; ``processed`` (the
    ``ProcessedEvent`` it leaves as) by ``prepare``. Stages and plugins may rewrite ``raw``;
    ``original`` keeps the event as it arrived, for the dead-letter topic, and
    ``source_topic`` and ``position`` say where it came from.
    """

    raw: RawEvent
    source_topic: str
    original: RawEvent | None = None  # the event as it arrived, for the dead-letter topic
    properties: dict[str, Any] = field(default_factory=dict)
    team_id: int | None = None
    project: Project | None = None
    warnings: list[Warning] = field(default_factory=list)
    person: EventPerson | None = None
    groups: dict[int, str] = field(default_factory=dict)  # group type index -> key: the $group_0..4 columns
    processed: ProcessedEvent | None = None
    position: Position | None = None  # where it was read; None outside the worker (tests, topology test)

    @classmethod
    def from_raw(cls, raw: RawEvent, source_topic: str, position: Position | None = None) -> PipelineEvent:
        props = orjson.loads(raw["properties"]) if raw["properties"] else {}
        # stages and plugins rewrite raw fields; a shallow copy keeps what arrived (values are immutable)
        original = raw.copy()
        return cls(raw=raw, source_topic=source_topic, original=original,
                   properties=props if isinstance(props, dict) else {}, position=position)

    @property
    def arrived(self) -> RawEvent:
        """The event exactly as it arrived: what the dead-letter topic carries."""
        return self.original if self.original is not None else self.raw

    @property
    def processes_person(self) -> bool:
        """False for ``$process_person_profile: false`` events and ``skip_person_processing`` restrictions."""
        return self.properties.get("$process_person_profile") is not False and not self.raw.get(
            "skip_person_processing", False)

    def warn(self, type_: str, key: str | None = None, **details: Any) -> None:
        """Record an ingestion warning about this event (deduplicated per hour by ``key``)."""
        self.warnings.append(Warning(type_, key if key is not None else self.raw["distinct_id"],
                                     {"event_uuid": self.raw["uuid"], "event": self.raw["event"], **details}))


@lru_cache(maxsize=65_536)  # a batch holds many events of few people; uuid5 costs a SHA-1
def person_uuid(team_id: int, distinct_id: str) -> str:
    """The id of the person ``distinct_id`` maps to before any merge: UUIDv5 of ``team_id:distinct_id``."""
    return str(uuid.uuid5(PERSON_NAMESPACE, f"{team_id}:{distinct_id}"))


def to_processed(event: PipelineEvent) -> ProcessedEvent:
    """The record an event that passed every stage is emitted as."""
    if event.team_id is None:
        raise StageError("an event reached prepare without a project (is resolve_project in the stages?)")
    raw, props, person = event.raw, event.properties, event.person
    return ProcessedEvent(
        uuid=raw["uuid"],
        event=raw["event"][:MAX_EVENT_NAME],
        properties=orjson.dumps(props).decode(),
        timestamp=raw["timestamp"],
        team_id=event.team_id,
        distinct_id=raw["distinct_id"],
        elements_chain=str(props.get("$elements_chain", "")),
        created_at=raw["now"],
        person_id=person.uuid if person is not None else person_uuid(event.team_id, raw["distinct_id"]),
        person_properties=person.properties_json if person is not None else "{}",
        person_created_at=person.created_at if person is not None else None,
        person_mode="full" if event.processes_person else "propertyless",
        group_0=event.groups.get(0, ""),
        group_1=event.groups.get(1, ""),
        group_2=event.groups.get(2, ""),
        group_3=event.groups.get(3, ""),
        group_4=event.groups.get(4, ""),
        historical_migration=raw["historical_migration"],
    )
