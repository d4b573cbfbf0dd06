"""One batch's person events: load, apply the rules, write; again from Postgres if another writer won."""

from __future__ import annotations

from collections.abc import Sequence

from headwater.errors import Unavailable
from streams import telemetry
from streams.event import person_uuid
from streams.persons.rules import Applied, PersonBatch, PersonEvent
from streams.persons.store import PersonConflict, PersonStore, Written

MAX_ATTEMPTS = 5


async def apply_batch(store: PersonStore, events: Sequence[tuple[int, PersonEvent]]) -> tuple[list[Applied], Written]:
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
