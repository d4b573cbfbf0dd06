"""One batch's person events: load, apply the rules, write; again from Postgres if another writer won."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from headwater.errors import Unavailable
from streams import telemetry
from streams.errors import StreamsError
from streams.event import person_uuid
from streams.outbox import Send
from streams.persons.groups import GroupUpdate
from streams.persons.rows import Written
from streams.persons.rules import Applied, Changes, Known, PersonBatch, PersonEvent

MAX_ATTEMPTS = 5


class PersonConflict(StreamsError):
    """Another writer changed what this batch read: reload (bypassing caches) and apply it again."""


class PersonStorage(Protocol):
    """Where persons live: ``streams.persons.store.PersonStore`` (Postgres and Redis) in the worker,
    ``streams.persons.memory.MemoryPersonStore`` in ``topology test`` and unit tests."""

    async def load(self, ids: Collection[tuple[int, str]], *, use_cache: bool = True) -> dict[int, Known]:
        """What is stored for ``(team_id, distinct_id)`` pairs, per team (every team asked for)."""
        ...

    async def write(self, changes: Mapping[int, Changes]) -> Written:
        """Write every team's changes at once; ``PersonConflict`` when another writer got there first."""
        ...

    async def group_types(self, team_id: int, names: Collection[str]) -> dict[str, int]:
        """The project's group type → index, giving ``names`` the next free indexes (at most five types)."""
        ...

    async def write_groups(self, updates: Sequence[GroupUpdate]) -> Written:
        """Set groups' properties (one update per group, ``groups.combine``); their rows as messages."""
        ...

    async def relay(self, send: Send) -> int:
        """Send rows an earlier writer stored and never sent; how many."""
        ...


async def apply_batch(store: PersonStorage, events: Sequence[tuple[int, PersonEvent]]) -> tuple[list[Applied], Written]:
    """Apply ``(team_id, event)`` pairs in order; what each event leaves with, and what was written.

    A write that loses to another worker (``PersonConflict``) is applied again from what Postgres
    holds, bypassing the cache, up to ``MAX_ATTEMPTS`` times; after that ``Unavailable``, which
    the stage runner retries after a backoff while the partition waits.
    """
    ids = {(team, e.distinct_id) for team, e in events}
    ids |= {(team, e.merge_from) for team, e in events if e.merge_from is not None}
    use_cache = True
    for _ in range(MAX_ATTEMPTS):
        known = await store.load(ids, use_cache=use_cache)
        batches = {team: PersonBatch(team, k, person_uuid) for team, k in known.items()}
        applied = [batches[team].apply(e) for team, e in events]
        try:
            written = await store.write({team: b.changes() for team, b in batches.items()})
        except PersonConflict:
            telemetry.PERSON_WRITE_CONFLICTS.inc()
            use_cache = False
            continue
        return applied, written
    raise Unavailable(f"person writes conflicted {MAX_ATTEMPTS} times in a row; will try again",
                      "persons_contended")
