"""Persons in memory: the store ``topology test`` and unit tests use (no Postgres, no Redis).

It keeps the same promises as ``PersonStore``: a write is refused with ``PersonConflict``
when a person is no longer at the version it was read at or a distinct id got an owner since,
merges move every distinct id of the source, and a batch overlapping the applied offsets is
refused with ``AlreadyApplied``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence

from headwater.runtime.topology import PersonTopics
from streams.event import Order, Partition
from streams.outbox import OutMessage, Send
from streams.persons.groups import GroupUpdate, next_indexes
from streams.persons.offsets import Progress
from streams.persons.process import AlreadyApplied, PersonConflict
from streams.persons.rows import DistinctIdRow, GroupRow, PersonRow, Written, envelopes
from streams.persons.rules import Changes, Known, Person


class MemoryPersonStore:
    """A ``PersonStorage`` in dicts; ``topics`` given, writes come back with their messages too."""

    def __init__(self, topics: PersonTopics | None = None) -> None:
        self.topics = topics
        self.owners: dict[tuple[int, str], tuple[str, int]] = {}  # (team, distinct id) -> (person, version)
        self.persons: dict[tuple[int, str], Person] = {}
        self.overrides: dict[tuple[int, str], str] = {}
        self.group_type_index: dict[int, dict[str, int]] = {}
        self.groups: dict[tuple[int, int, str], GroupRow] = {}
        self.offsets: dict[Partition, Order] = {}  # how far each partition's person updates are applied

    async def load(self, ids: Collection[tuple[int, str]], *, use_cache: bool = True) -> dict[int, Known]:
        known: dict[int, Known] = {}
        for team in {t for t, _ in ids}:
            owners = {d: self.owners[(t, d)][0] for t, d in ids if t == team and (t, d) in self.owners}
            persons = {u: copy.deepcopy(self.persons[(team, u)]) for u in owners.values()}
            known[team] = Known(owners, persons)
        return known

    async def write(self, changes: Mapping[int, Changes], progress: Progress) -> Written:
        overlap = {k: self.offsets[k] for k in progress if k in self.offsets and self.offsets[k] >= progress[k][0]}
        if overlap:
            raise AlreadyApplied(overlap)
        for team, c in changes.items():
            self._check(team, c)
        self.offsets.update({k: last for k, (_, last) in progress.items()})
        written = Written()
        for team, c in changes.items():
            self._apply(team, c, written)
        if self.topics is not None:
            written.messages = [OutMessage(t, value, count) for t, value, count in envelopes(written, self.topics)]
        return written

    async def group_types(self, team_id: int, names: Collection[str]) -> dict[str, int]:
        held = self.group_type_index.setdefault(team_id, {})
        held.update(next_indexes(held, names))
        return dict(held)

    async def write_groups(self, updates: Sequence[GroupUpdate]) -> Written:
        written = Written()
        for u in updates:
            key = (u.team_id, u.group_type_index, u.group_key)
            held = self.groups.get(key)
            if held is None:
                row = GroupRow(u.team_id, u.group_type_index, u.group_key, u.timestamp, dict(u.properties), 0)
            elif {**held.properties, **u.properties} != held.properties:
                row = GroupRow(u.team_id, u.group_type_index, u.group_key, held.created_at,
                               {**held.properties, **u.properties}, held.version + 1)
            else:
                continue
            self.groups[key] = row
            written.groups.append(row)
        if self.topics is not None:
            written.messages = [OutMessage(t, value, count) for t, value, count in envelopes(written, self.topics)]
        return written

    async def relay(self, send: Send) -> int:
        return 0  # every write's messages go out with its batch

    def _check(self, team: int, c: Changes) -> None:
        for person in c.created:
            if (team, person.uuid) in self.persons:
                raise PersonConflict("a person this batch creates exists already")
        for person, expected in c.updated:
            stored = self.persons.get((team, person.uuid))
            if stored is None or stored.version != expected:
                raise PersonConflict("a person changed since it was read")
        for distinct_id, _ in c.new_ids:
            if (team, distinct_id) in self.owners:
                raise PersonConflict("a distinct id got a person since it was read")
        for merge in c.merges:
            stored = self.persons.get((team, merge.source))
            if stored is None or stored.version != merge.source_version:
                raise PersonConflict("a merged person changed since it was read")

    def _apply(self, team: int, c: Changes, written: Written) -> None:
        for person in [*c.created, *(p for p, _ in c.updated)]:
            self.persons[(team, person.uuid)] = copy.deepcopy(person)
            written.persons.append(PersonRow(team, copy.deepcopy(person)))
        for distinct_id, owner in c.new_ids:
            self.owners[(team, distinct_id)] = (owner, 0)
            written.distinct_ids.append(DistinctIdRow(team, distinct_id, owner, 0))
        for merge in c.merges:
            for (t, distinct_id), (owner, version) in list(self.owners.items()):
                if t == team and owner == merge.source:
                    self.owners[(t, distinct_id)] = (merge.target, version + 1)
                    self.overrides[(t, distinct_id)] = merge.target
                    row = DistinctIdRow(team, distinct_id, merge.target, version + 1)
                    written.distinct_ids.append(row)
                    written.overrides.append(row)
            source = self.persons.pop((team, merge.source))
            written.persons.append(PersonRow(team, Person(source.uuid, source.created_at, {}, False,
                                                          source.version + 100), is_deleted=True))
        for distinct_id, owner in c.moved_new_ids:
            self.overrides[(team, distinct_id)] = owner
            written.overrides.append(DistinctIdRow(team, distinct_id, owner, 0))
