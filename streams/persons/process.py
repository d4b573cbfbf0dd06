"""One batch's person events: load, apply the rules, write; again from Postgres if another writer won."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from headwater.errors import Unavailable
from streams import telemetry
from streams.errors import StreamsError
from streams.event import Order, Partition, Position, person_uuid
from streams.outbox import Send
from streams.persons.groups import GroupUpdate
from streams.persons.offsets import Progress, progress_of
from streams.persons.rows import Written
from streams.persons.rules import Applied, Changes, Known, PersonBatch, PersonEvent

MAX_ATTEMPTS = 5
NOWHERE: Order = (-1, -1)


class PersonConflict(StreamsError):
    """Another writer changed what this batch read: reload (bypassing caches) and apply it again."""


class AlreadyApplied(StreamsError):
    """The store applied some of the batch's events before (``streams.persons.offsets``): ``upto``,
    per partition, the last place (offset, index) it applied; reload and leave those events out."""

    def __init__(self, upto: Mapping[Partition, Order]) -> None:
        super().__init__(f"person updates already applied up to {dict(upto)}")
        self.upto = dict(upto)


class PersonStorage(Protocol):
    """Where persons live: ``streams.persons.store.PersonStore`` (Postgres and Redis) in the worker,
    ``streams.persons.memory.MemoryPersonStore`` in ``topology test`` and unit tests."""

    async def load(self, ids: Collection[tuple[int, str]], *, use_cache: bool = True) -> dict[int, Known]:
        """What is stored for ``(team_id, distinct_id)`` pairs, per team (every team asked for)."""
        ...

    async def write(self, changes: Mapping[int, Changes], progress: Progress) -> Written:
        """Write every team's changes at once, and move the partitions' applied offsets to ``progress``'s
        last; ``PersonConflict`` when another writer got there first, ``AlreadyApplied`` when a
        partition's applied offset is at or past ``progress``'s first."""
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


async def apply_batch(store: PersonStorage, events: Sequence[tuple[int, PersonEvent, Position | None]],
                      ) -> tuple[list[Applied], Written]:
    """Apply ``(team_id, event, where it was read)`` in order; what each event leaves with, and what was written.

    A write that loses to another worker (``PersonConflict``) is applied again from what Postgres
    holds, bypassing the cache, up to ``MAX_ATTEMPTS`` times; after that ``Unavailable``, which
    the stage runner retries after a backoff while the partition waits. A write that finds some
    events applied before (``AlreadyApplied``: a batch read again after a crash) is done again
    from Postgres with those events left out.
    """
    ids = {(team, e.distinct_id) for team, e, _ in events}
    ids |= {(team, e.merge_from) for team, e, _ in events if e.merge_from is not None}
    use_cache = True
    upto: dict[Partition, Order] = {}
    for _ in range(MAX_ATTEMPTS):
        known = await store.load(ids, use_cache=use_cache)
        batches = {team: PersonBatch(team, k, person_uuid) for team, k in known.items()}
        applied: list[Applied] = []
        updates: list[Position] = []
        for team, event, position in events:
            if position is not None and position.order <= upto.get(position.key, NOWHERE):
                applied.append(batches[team].replayed(event))
                continue
            applied.append(batches[team].apply(event))
            if position is not None and event.changes_person:
                updates.append(position)
        try:
            written = await store.write({team: b.changes() for team, b in batches.items()}, progress_of(updates))
        except PersonConflict:
            telemetry.PERSON_WRITE_CONFLICTS.inc()
            use_cache = False
            continue
        except AlreadyApplied as exc:
            telemetry.PERSON_EVENTS_REPLAYED.inc(sum(1 for _, _, p in events
                                                     if p is not None and p.order <= exc.upto.get(p.key, NOWHERE)))
            upto.update(exc.upto)
            use_cache = False
            continue
        return applied, written
    raise Unavailable(f"person writes conflicted {MAX_ATTEMPTS} times in a row; will try again",
                      "persons_contended")
