"""The person rules, applied to one batch in memory: no I/O here.

A ``PersonBatch`` starts from what the store holds for the batch's distinct ids (``Known``),
applies each event in ingestion order (creation, ``$set``/``$set_once``/``$unset``, the
volatile-keys write filter, ``$identify``/``$create_alias``/``$merge_dangerously`` merges with
their refusals), tells each event the person it leaves with, and at the end lists what the store
must write (``Changes``). Working copies are made on first touch, so the ``Known`` it started from
is never changed: after a write conflict the store reloads and a fresh batch replays the events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from streams.persons.ids import illegal_distinct_id

MERGE_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously"})
PERSON_EVENTS = MERGE_EVENTS | {"$set"}
# A change to only these, on an event that is not about the person, is not worth a write.
VOLATILE_KEYS = frozenset({
    "$current_url", "$pathname", "$referrer", "$screen_height", "$screen_width", "$viewport_height",
    "$viewport_width", "$browser", "$browser_version", "$os", "$os_version", "$device_type",
})


@dataclass
class Person:
    """A person as the store holds it. ``created_at`` is in microseconds since the epoch."""

    uuid: str
    created_at: int
    properties: dict[str, Any]
    is_identified: bool = False
    version: int = 0


@dataclass(frozen=True)
class Known:
    """What the store holds before the batch: each distinct id's owner and those persons.

    A distinct id absent from ``owners`` has no person yet.
    """

    owners: Mapping[str, str]
    persons: Mapping[str, Person]


_NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)  # not frozen: made once per event, and a frozen dataclass is slower to make
class PersonEvent:
    """What the person rules read from an event (treat it as read-only)."""

    name: str
    distinct_id: str
    timestamp: int
    set: Mapping[str, Any] = field(default_factory=dict)
    set_once: Mapping[str, Any] = field(default_factory=dict)
    unset: Sequence[str] = ()
    merge_from: str | None = None

    @property
    def changes_person(self) -> bool:
        """Whether the event can change a person: it sets, unsets or merges (creating one aside)."""
        return bool(self.set or self.set_once or self.unset or self.merge_from is not None)

    @classmethod
    def from_properties(cls, name: str, distinct_id: str, timestamp: int, properties: Mapping[str, Any]) -> PersonEvent:
        """Read ``$set``, ``$set_once``, ``$unset`` and the id to merge from an event's properties."""
        merge_from: Any = None
        if name == "$identify":
            merge_from = properties.get("$anon_distinct_id")
        elif name in MERGE_EVENTS:
            merge_from = properties.get("alias")
        return cls(
            name=name, distinct_id=distinct_id, timestamp=timestamp,
            set=_mapping(properties.get("$set")), set_once=_mapping(properties.get("$set_once")),
            unset=_keys(properties.get("$unset")),
            merge_from=None if merge_from is None else str(merge_from),
        )


@dataclass(frozen=True)
class Warning:
    """An ingestion warning the rules raised for one event."""

    type: str
    details: Mapping[str, Any]


@dataclass(slots=True)
class Applied:
    """The person an event leaves with, after the event: what its row in ``events`` carries."""

    person_uuid: str
    properties_json: str
    created_at: int
    warning: Warning | None = None


@dataclass(frozen=True)
class Merge:
    """``source`` (as stored, at ``source_version``) is merged into ``target``: its distinct ids move."""

    source: str
    source_version: int
    target: str


@dataclass
class Changes:
    """What the store must write for a batch, in one transaction.

    ``created`` persons are inserted, ``updated`` ones written only if still at the version
    they were read at (``expected``), ``new_ids`` inserted (a distinct id with no owner yet, with
    its final owner), ``merges`` move every distinct id of a stored source to the final target
    and delete the source. ``moved_new_ids`` are distinct ids first seen in this batch whose person
    (created in this batch) was merged away in it: events already left with the old uuid, so
    they need an override row as much as stored ids that moved.
    """

    created: list[Person] = field(default_factory=list)
    updated: list[tuple[Person, int]] = field(default_factory=list)
    new_ids: list[tuple[str, str]] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    moved_new_ids: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.created or self.updated or self.new_ids or self.merges)


class PersonBatch:
    """Applies one batch's person events, in order, to a working copy of ``Known``."""

    def __init__(self, team_id: int, known: Known, new_person_uuid: Callable[[int, str], str]) -> None:
        self._team_id = team_id
        self._known = known
        self._new_uuid = new_person_uuid  # (team_id, distinct_id) -> the new person's uuid
        self._owners: dict[str, str] = {}  # distinct ids whose owner changed in this batch
        self._work: dict[str, Person] = {}  # working copies, by uuid
        self._created: dict[str, Person] = {}
        self._new_ids: dict[str, str] = {}  # distinct ids with no stored owner -> their owner now
        self._first_owner: dict[str, str] = {}  # ... and the person their first event left with
        self._merged_into: dict[str, str] = {}
        self._merges: list[Merge] = []
        self._json: dict[str, str] = {}  # properties JSON, dropped on every change

    # -- reading -------------------------------------------------------------------------------

    def owner(self, distinct_id: str) -> str | None:
        found = self._owners.get(distinct_id)
        return found if found is not None else self._known.owners.get(distinct_id)

    def _person(self, uuid: str) -> Person:
        work = self._work.get(uuid)
        if work is None:
            held = self._known.persons[uuid]
            work = dataclasses.replace(held, properties=dict(held.properties))  # rules change top-level keys only
            self._work[uuid] = work
        return work

    def _peek(self, uuid: str) -> Person:
        """The person without taking a working copy (for reading only)."""
        return self._work.get(uuid) or self._known.persons[uuid]

    # -- applying ------------------------------------------------------------------------------

    def apply(self, event: PersonEvent) -> Applied:
        """Apply one event; the person it leaves with (and a warning, if the rules refused something)."""
        written: set[str] = set()
        warning: Warning | None = None
        source = event.merge_from
        if event.name in MERGE_EVENTS and source is not None and source != event.distinct_id:
            warning = self._merge(event, source, written)
        uuid = self.owner(event.distinct_id)
        if uuid is None:
            person = self._create(event.distinct_id, event.timestamp, identified=False)
            _update(person.properties, event)
            written.add(person.uuid)
        else:
            person = self._peek(uuid)
            changed = _changes(person.properties, event)
            if changed and (event.name in PERSON_EVENTS or not changed <= VOLATILE_KEYS):
                person = self._person(uuid)
                _update(person.properties, event)
                self._write(person, written)
        return Applied(person.uuid, self._properties_json(person), person.created_at, warning)

    def replayed(self, event: PersonEvent) -> Applied:
        """An event the store already applied (read again after a crash): the person it belongs to
        now, nothing changed; applied as new if its distinct id has no person."""
        uuid = self.owner(event.distinct_id)
        if uuid is None:
            return self.apply(event)
        person = self._peek(uuid)
        return Applied(person.uuid, self._properties_json(person), person.created_at, None)

    def _merge(self, event: PersonEvent, source: str, written: set[str]) -> Warning | None:
        target = event.distinct_id
        if illegal_distinct_id(source) or illegal_distinct_id(target):
            illegal = source if illegal_distinct_id(source) else target
            return Warning("cannot_merge_with_illegal_distinct_id",
                           {"source_distinct_id": source, "target_distinct_id": target, "illegal_id": illegal})
        source_uuid, target_uuid = self.owner(source), self.owner(target)
        if source_uuid is None and target_uuid is None:
            person = self._create(target, event.timestamp, identified=True)
            self._assign(source, person.uuid)
            written.add(person.uuid)
        elif source_uuid is None:
            assert target_uuid is not None
            self._assign(source, target_uuid)
            self._identify(target_uuid, written)
        elif target_uuid is None:
            self._assign(target, source_uuid)
            self._identify(source_uuid, written)
        elif source_uuid != target_uuid:
            if self._peek(source_uuid).is_identified and event.name != "$merge_dangerously":
                return Warning("cannot_merge_already_identified",
                               {"source_distinct_id": source, "target_distinct_id": target})
            self._merge_persons(source_uuid, target_uuid, written)
        return None

    def _merge_persons(self, source_uuid: str, target_uuid: str, written: set[str]) -> None:
        source, target = self._person(source_uuid), self._person(target_uuid)
        target.properties = {**source.properties, **target.properties}
        target.created_at = min(source.created_at, target.created_at)
        target.is_identified = True
        target.version = max(source.version, target.version) + 1
        written.add(target_uuid)
        self._json.pop(target_uuid, None)
        self._merged_into[source_uuid] = target_uuid
        for distinct_id in [d for d, owner in self._new_ids.items() if owner == source_uuid]:
            self._new_ids[distinct_id] = target_uuid
            self._owners[distinct_id] = target_uuid
        for distinct_id in [d for d, owner in self._owners.items() if owner == source_uuid]:
            self._owners[distinct_id] = target_uuid
        for distinct_id, owner in self._known.owners.items():
            if owner == source_uuid and distinct_id not in self._owners:
                self._owners[distinct_id] = target_uuid
        if source_uuid in self._created:
            del self._created[source_uuid]
        else:
            self._merges.append(Merge(source_uuid, self._known.persons[source_uuid].version, target_uuid))

    def _create(self, distinct_id: str, timestamp: int, *, identified: bool) -> Person:
        person = Person(self._new_uuid(self._team_id, distinct_id), timestamp, {}, identified, 0)
        self._work[person.uuid] = person
        self._created[person.uuid] = person
        self._assign(distinct_id, person.uuid)
        return person

    def _assign(self, distinct_id: str, uuid: str) -> None:
        self._owners[distinct_id] = uuid
        self._new_ids[distinct_id] = uuid
        self._first_owner.setdefault(distinct_id, uuid)

    def _identify(self, uuid: str, written: set[str]) -> None:
        if not self._peek(uuid).is_identified:
            person = self._person(uuid)
            person.is_identified = True
            self._write(person, written)

    def _write(self, person: Person, written: set[str]) -> None:
        """One write per person per event: the version moves once however much the event changed."""
        if person.uuid not in written and person.uuid not in self._created:
            person.version += 1
        written.add(person.uuid)
        self._json.pop(person.uuid, None)

    def _properties_json(self, person: Person) -> str:
        text = self._json.get(person.uuid)
        if text is None:  # serialised once per change, not once per event
            text = orjson.dumps(person.properties).decode()
            self._json[person.uuid] = text
        return text

    # -- result --------------------------------------------------------------------------------

    def final(self, uuid: str) -> str:
        """Where a person ended up after this batch's merges."""
        while uuid in self._merged_into:
            uuid = self._merged_into[uuid]
        return uuid

    def changes(self) -> Changes:
        """What to write: created persons, updated ones (with the version read), ids, merges."""
        merged = set(self._merged_into)
        result = Changes()
        result.created = [p for u, p in self._created.items() if u not in merged]
        result.updated = [(p, self._known.persons[u].version) for u, p in self._work.items()
                          if u not in merged and u not in self._created
                          and p.version != self._known.persons[u].version]
        result.new_ids = [(d, self.final(u)) for d, u in self._new_ids.items()]
        result.merges = [Merge(m.source, m.source_version, self.final(m.target)) for m in self._merges]
        result.moved_new_ids = [(d, self.final(u)) for d, u in self._new_ids.items()
                                if self.final(self._first_owner[d]) != self._first_owner[d]]
        return result


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if value.__class__ is dict else _NOTHING


def _keys(value: Any) -> Sequence[str]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, (list, tuple)):  # a tuple: quicker than a union here
        return [k for k in value if isinstance(k, str)]
    return ()


def _changes(properties: Mapping[str, Any], event: PersonEvent) -> set[str]:
    """The keys the event would change: ``$set_once`` of absent keys, ``$set`` of different values,
    ``$unset`` of present ones."""
    if not (event.set or event.set_once or event.unset):
        return set()
    changed = {k for k in event.set_once if k not in properties and k not in event.set}
    changed.update(k for k, v in event.set.items() if k not in properties or properties[k] != v)
    changed.update(k for k in event.unset if k in properties or k in changed)
    return changed


def _update(properties: dict[str, Any], event: PersonEvent) -> None:
    """``$set_once`` (absent keys only), then ``$set``, then ``$unset``, in place."""
    for key, value in event.set_once.items():
        properties.setdefault(key, value)
    properties.update(event.set)
    for key in event.unset:
        properties.pop(key, None)
