"""``headwater dlq replay`` for a sink's dead letters: delivered to that sink again, not to its source topic.

A sink's dead letters (stage ``sink:<name>``: a destination that was paused, a record it refused,
an envelope it could not read) are not put back on the sink's source topic, which every other
reader of that topic would read again: they are written to the sink itself, through the same
contract the worker uses (``start``, ``write``, ``flush``, ``close``), built from the sink's
current config in topology.yaml. A letter counts as replayed only once the flush returned it as
written; one the sink dead-letters again (still paused, still refused) is reported and stays to
be replayed later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from headwater.dead_letters import DeadLetter
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology.model import SinkSpec, Topology
from sinks.agent import STAGE_PREFIX
from sinks.base import SourceEnvelope, SourcePosition
from sinks.errors import SinkError
from sinks.registry import resolve_sink

FLUSH_TIMEOUT_SECONDS = 120.0
"""How long one replayed batch may take before its letters count as still failing."""


def sink_named(stage: str) -> str | None:
    """The sink a dead letter's ``stage`` names (None: a pipeline stage's letter)."""
    return stage.removeprefix(STAGE_PREFIX) if stage.startswith(STAGE_PREFIX) else None


class SinkRedelivery:
    """Delivers dead letters to the sinks of one topology (``headwater.dead_letters.Redelivery``)."""

    def __init__(self, topology: Topology, endpoints: Endpoints, timeout: float = FLUSH_TIMEOUT_SECONDS) -> None:
        self._sinks = {spec.name: spec for spec in topology.sinks}
        self._endpoints = endpoints
        self._timeout = timeout

    def handles(self, letter: DeadLetter) -> bool:
        return sink_named(letter.stage) is not None

    def deliver(self, dead_letter_topic: str, letters: Sequence[DeadLetter]) -> dict[tuple[int, int], str]:
        """Give ``letters`` (all of one sink) to their sink; the ones it did not take, with why."""
        name = sink_named(letters[0].stage) or ""
        spec = self._sinks.get(name)
        if spec is None:
            known = ", ".join(sorted(self._sinks)) or "none"
            return {(d.partition, d.offset): f"topology.yaml has no sink {name!r} now (sinks: {known})"
                    for d in letters}
        return asyncio.run(self._deliver(spec, dead_letter_topic, letters))

    async def _deliver(self, spec: SinkSpec, dead_letter_topic: str,
                       letters: Sequence[DeadLetter]) -> dict[tuple[int, int], str]:
        everything = {(d.partition, d.offset) for d in letters}
        # named by the letter's place in the dead-letter topic: a sink that names its output by the
        # source position (files) writes a replayed letter to one place, however often it is replayed
        envelopes = [SourceEnvelope(d.value, d.key, len(d.events) or None,
                                    SourcePosition(f"{dead_letter_topic}-replay", d.partition, d.offset))
                     for d in letters]
        try:
            sink = resolve_sink(spec.type).build(spec.name, spec.config, self._endpoints)
            await sink.start()
        except (SinkError, ValueError) as exc:
            return dict.fromkeys(everything, f"sink {spec.name!r} cannot start: {exc}")
        try:
            sink.write(envelopes)
            result = await asyncio.wait_for(sink.flush(), self._timeout)
        except TimeoutError:
            return dict.fromkeys(everything, f"sink {spec.name!r} did not finish within {self._timeout:.0f}s")
        except SinkError as exc:
            return dict.fromkeys(everything, f"sink {spec.name!r}: {exc}")
        finally:
            await sink.close()
        failed: dict[tuple[int, int], str] = {}
        place = {id(e): (d.partition, d.offset) for e, d in zip(envelopes, letters, strict=True)}
        for unwritten in result.unwritten:
            failed[place[id(unwritten.envelope)]] = f"{unwritten.reason}: {unwritten.error}"
        by_uuid = {str(event.get("uuid")): (d.partition, d.offset) for d in letters for event in d.events}
        for rejected in result.rejected:
            where = by_uuid.get(str(rejected.record.get("uuid")))
            for at in [where] if where is not None else everything:  # a record without a uuid fails them all
                failed[at] = f"refused: {rejected.error}"
        return failed
