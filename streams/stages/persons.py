"""``persons``: PostHog's person model, a batch at a time (``streams.persons``).

Each event that processes a person (``$process_person_profile`` not false, no
``skip_person_processing`` restriction) leaves with the person its distinct id belongs to
after the event: creations, ``$set``/``$set_once``/``$unset`` and ``$identify``/``$create_alias``/
``$merge_dangerously`` merges are applied in order, read with one lookup and written in one
transaction per batch; the rows for ClickHouse's person tables go out with the batch
(``streams.outbox``). The other events keep a UUIDv5 person id and no properties: person
updates are stripped and person-only events are dropped with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import cast

from headwater.errors import Unavailable
from streams.errors import StageError
from streams.event import EventPerson, PipelineEvent
from streams.outbox import Outbox
from streams.persons.process import PersonStorage, apply_batch
from streams.persons.rules import PersonEvent
from streams.stages.base import BaseStage, Drop, Errored, Ok, Outcome
from streams.stages.registry import NoConfig, register_stage

PERSON_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously", "$groupidentify"})
RELAY_EVERY_SECONDS = 10.0

log = logging.getLogger("headwater.stages.persons")


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
        work: list[tuple[int, int, PersonEvent]] = []
        for i, event in enumerate(events):
            if not event.processes_person:
                outcomes[i] = _personless(event)
            elif event.team_id is None:
                outcomes[i] = Errored(StageError("an event reached persons without a project "
                                                 "(is resolve_project in the stages?)"))
            else:
                raw = event.raw
                work.append((i, event.team_id, PersonEvent.from_properties(
                    raw["event"], raw["distinct_id"], raw["timestamp"], event.properties)))
        if work:
            applied, written = await apply_batch(self._store, [(team, e) for _, team, e in work])
            self._outbox.add(written.messages)
            for (i, _, _), result in zip(work, applied, strict=True):
                event = events[i]
                event.person = EventPerson(result.person_uuid, result.properties_json, result.created_at)
                if result.warning is not None:
                    event.warn(result.warning.type, **result.warning.details)
                outcomes[i] = Ok(event)
        return cast(list[Outcome], outcomes)  # every index was filled above


register_stage(
    "persons", NoConfig, lambda name, _config, resources: Persons(name, resources.persons, resources.outbox),
    "Persons: creation, $set/$set_once/$unset and merges, in Postgres (cached in Redis), one round trip a batch.",
)
