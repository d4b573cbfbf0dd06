"""``persons``: PostHog's person model, a batch at a time (``streams.persons``).

Each event that processes a person (``$process_person_profile`` not false, no
``skip_person_processing`` restriction) leaves with the person its distinct id belongs to
after the event: creations, ``$set``/``$set_once``/``$unset`` and ``$identify``/``$create_alias``/
``$merge_dangerously`` merges are applied in order, read with one lookup and written in one
transaction per batch; the rows for ClickHouse's person tables go out with the batch
(``streams.outbox``). The other events keep a UUIDv5 person id and no properties: person
updates are stripped and person-only events are dropped with a warning.

Groups (``streams.persons.groups``): every event's ``$groups`` fills ``$group_0..4`` by the
project's group type indexes (given on first sight, at most five types), and ``$groupidentify``
sets the group's properties from ``$group_set``, one write per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import cast

from headwater.errors import Unavailable
from streams.errors import StageError
from streams.event import EventPerson, PipelineEvent, Position
from streams.outbox import Outbox
from streams.persons.groups import MAX_GROUP_KEY, GroupUpdate, combine, group_key
from streams.persons.process import PersonStorage, apply_batch
from streams.persons.rules import PersonEvent
from streams.stages.base import BaseStage, Drop, Errored, Ok, Outcome
from streams.stages.registry import NoConfig, register_stage

PERSON_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously", "$groupidentify"})
RELAY_EVERY_SECONDS = 10.0

log = logging.getLogger("headwater.stages.persons")


def _group_type_names(event: PipelineEvent) -> list[str]:
    named = event.properties.get("$groups")
    names = [n for n in named if isinstance(n, str)] if isinstance(named, dict) else []
    if event.raw["event"] == "$groupidentify" and isinstance(event.properties.get("$group_type"), str):
        names.append(event.properties["$group_type"])
    return names


def _personless(event: PipelineEvent) -> Outcome:
    if event.raw["event"] in PERSON_EVENTS:
        event.warn("invalid_event_when_process_person_profile_is_false", event_name=event.raw["event"])
        return Drop("person_event_without_person_processing")
    for key in ("$set", "$set_once", "$unset"):
        event.properties.pop(key, None)
    return Ok(event)


class Persons(BaseStage):
    """The ``persons`` stage; see the module docstring."""

    def __init__(self, name: str, store: PersonStorage, outbox: Outbox) -> None:
        super().__init__(name)
        self._store = store
        self._outbox = outbox
        self._relay: asyncio.Task[None] | None = None
        self._types: dict[int, dict[str, int]] = {}  # team -> group type -> index
        self._unmapped: set[tuple[int, str]] = set()  # types beyond the fifth, ignored

    async def start(self) -> None:
        self._relay = asyncio.create_task(self._relay_forever(), name=f"{self.name}-relay")

    async def close(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay

    async def _relay_forever(self) -> None:
        """Send the person rows an earlier worker wrote to Postgres but died before sending."""
        while True:
            try:
                sent = await self._store.relay(self._outbox.send_now)
                if sent:
                    log.info("%s: sent %d person row envelopes an earlier worker left behind", self.name, sent)
            except Unavailable as exc:
                log.warning("%s: person rows left behind cannot be relayed now: %s", self.name, exc)
            except Exception:
                log.exception("%s: relaying person rows failed; trying again", self.name)
            await asyncio.sleep(RELAY_EVERY_SECONDS)

    async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(events)
        work: list[tuple[int, int, PersonEvent, Position | None]] = []
        for i, event in enumerate(events):
            if not event.processes_person:
                outcomes[i] = _personless(event)
            elif event.team_id is None:
                outcomes[i] = Errored(StageError("an event reached persons without a project "
                                                 "(is resolve_project in the stages?)"))
            else:
                raw = event.raw
                work.append((i, event.team_id, PersonEvent.from_properties(
                    raw["event"], raw["distinct_id"], raw["timestamp"], event.properties), event.position))
        if work:
            applied, written = await apply_batch(self._store, [(team, e, p) for _, team, e, p in work])
            self._outbox.add(written.messages)
            for (i, *_), result in zip(work, applied, strict=True):
                event = events[i]
                event.person = EventPerson(result.person_uuid, result.properties_json, result.created_at)
                if result.warning is not None:
                    event.warn(result.warning.type, **result.warning.details)
                outcomes[i] = Ok(event)
        done = cast(list[Outcome], outcomes)  # every index was filled above
        grouped = [o.event for o in done if isinstance(o, Ok) and o.event.team_id is not None
                   and ("$groups" in o.event.properties or o.event.raw["event"] == "$groupidentify")]
        if grouped:
            await self._groups(grouped)
        return done

    async def _groups(self, events: list[PipelineEvent]) -> None:
        """``$groups`` → ``event.groups`` (``$group_0..4``); ``$groupidentify`` → the group's properties."""
        await self._learn_types(events)
        updates: list[GroupUpdate] = []
        for event in events:
            assert event.team_id is not None
            types = self._types.get(event.team_id, {})
            named = event.properties.get("$groups")
            if isinstance(named, dict):
                for name, value in named.items():
                    index, key = types.get(name), group_key(value)
                    if index is not None and key is not None:
                        event.groups[index] = key
            if event.raw["event"] == "$groupidentify" and event.processes_person:
                update = self._group_update(event, types)
                if update is not None:
                    updates.append(update)
        if updates:
            self._outbox.add((await self._store.write_groups(combine(updates))).messages)

    def _group_update(self, event: PipelineEvent, types: dict[str, int]) -> GroupUpdate | None:
        assert event.team_id is not None
        name, key = event.properties.get("$group_type"), group_key(event.properties.get("$group_key"))
        index = types.get(name) if isinstance(name, str) else None
        if index is None or key is None:
            return None
        if len(key) > MAX_GROUP_KEY:
            event.warn("group_key_too_long", key=str(name), group_type=name, group_key=key[:100])
            return None
        properties = event.properties.get("$group_set")
        return GroupUpdate(event.team_id, index, key, event.raw["timestamp"],
                           dict(properties) if isinstance(properties, dict) else {})

    async def _learn_types(self, events: list[PipelineEvent]) -> None:
        """Ask the store for group types this stage has not seen yet (types never change once given)."""
        wanted: dict[int, list[str]] = {}
        for event in events:
            assert event.team_id is not None
            known = self._types.get(event.team_id, {})
            for name in _group_type_names(event):
                if name not in known and (event.team_id, name) not in self._unmapped:
                    wanted.setdefault(event.team_id, []).append(name)
        for team, names in wanted.items():
            held = await self._store.group_types(team, names)
            self._types[team] = held
            self._unmapped.update((team, n) for n in names if n not in held)  # a sixth type: ignored


register_stage(
    "persons", NoConfig, lambda name, _config, resources: Persons(name, resources.persons, resources.outbox),
    "Persons and groups: creation, $set/$set_once/$unset, merges, $groups and $groupidentify; "
    "Postgres (cached in Redis), one round trip a batch.",
)
