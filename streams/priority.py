"""Live traffic first: historical imports wait while the live pipeline has events waiting.

``historical_migration`` imports land on their own topic (``capture.historical_topic``) and
can be millions of events. Read with the same weight as live traffic, a large import would
hold live events back behind it. So the worker runs two pipeline agents with the same stages,
one for the live sources and one for the historical topic. While any live partition of this
worker has events the live agent has not handled yet (in Kafka or in Faust's buffer), the
worker's Kafka consumer pauses the historical partitions (``hold_historical``); the
historical agent finishes what it already holds (a few small batches) and then idles, so the
fetches and the CPU go to live traffic. When live traffic has caught up, they resume.

Two things that do not work, and why. The historical agent must not simply stop reading its
stream: Faust hands each message to the streams in turn and waits for a full stream's buffer
to take it, so a stream that stopped reading would stop the live one too. And Faust's own
``pause_partitions`` only filters what the Kafka client already fetched: records of a paused
partition are dropped after the client advanced past them, so that partition stalls. The
pause has to reach the Kafka client (aiokafka), which then neither returns nor advances.

Under live load that never lets up, imports wait until it eases: that is the point.
``headwater_stream_historical_wait_seconds_total`` counts the time they waited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from streams import telemetry

if TYPE_CHECKING:
    import faust
    from faust.types import TP, EventT

log = logging.getLogger("headwater.worker")

POLL = 0.02
GRACE = 5.0
"""How long a live partition counts as waiting while what it holds is unknown: not fetched yet,
or, for a new consumer group (no committed offset), holding events the live agent has read none
of. The live agent gets the first fetches; after that, nothing read means nothing to read."""


class Offsets(Protocol):
    """What the priority needs to know of the worker's consumer (``FaustOffsets``)."""

    def assignment(self) -> Iterable[TP]: ...

    def highwater(self, tp: TP) -> int | None:
        """The offset the next message of ``tp`` will get, if known."""
        ...

    def read_offset(self, tp: TP) -> int | None:
        """Set once the consumer handed a message of ``tp`` to a stream (or seeked it)."""
        ...

    def committed(self, tp: TP) -> int | None:
        """The group's committed offset of ``tp`` (the next to read) when it was assigned, if any."""
        ...

    async def pause(self, tps: Iterable[TP]) -> None:
        """Stop fetching ``tps`` at the Kafka client: nothing of them is returned or skipped."""
        ...

    async def resume(self, tps: Iterable[TP]) -> None: ...


class FaustOffsets:
    """``Offsets`` of a Faust app's consumer."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def assignment(self) -> Iterable[TP]:
        return self._app.consumer.assignment()

    def highwater(self, tp: TP) -> int | None:
        try:
            return self._app.consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet, or a rebalance: unknown
            return None

    def read_offset(self, tp: TP) -> int | None:
        # faust-streaming 0.15 keeps the last offset it delivered per partition here (no public accessor)
        read: Any = getattr(self._app.consumer, "_read_offset", {})
        offset = read.get(tp)
        return offset if isinstance(offset, int) else None

    def committed(self, tp: TP) -> int | None:
        committed: Any = getattr(self._app.consumer, "_committed_offset", {})  # faust-streaming 0.15, as above
        offset = committed.get(tp)
        return offset if isinstance(offset, int) else None

    async def pause(self, tps: Iterable[TP]) -> None:
        await self._on_client("pause", tps)

    async def resume(self, tps: Iterable[TP]) -> None:
        await self._on_client("resume", tps)

    async def _on_client(self, method: str, tps: Iterable[TP]) -> None:
        """Call aiokafka's ``pause``/``resume`` in the thread that owns the client.

        faust-streaming 0.15 runs aiokafka in a thread of its own (``consumer._thread``) and
        has no public call for this; ``call_thread`` runs a coroutine there.
        """
        from aiokafka.structs import TopicPartition

        partitions = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        if not partitions:
            return
        thread: Any = self._app.consumer._thread  # type: ignore[attr-defined]

        async def call() -> None:
            getattr(thread._ensure_consumer(), method)(*partitions)

        await thread.call_thread(call)


class LivePriority:
    """Shared by the live and historical pipeline agents of one worker."""

    def __init__(self, live_topics: Iterable[str], offsets: Offsets) -> None:
        self._live = frozenset(live_topics)
        self._offsets = offsets
        self._handled: dict[TP, int] = {}
        self._first_seen: dict[TP, float] = {}

    def live_handled(self, messages: Iterable[EventT[bytes]]) -> None:
        """The live agent handled these messages (one batch)."""
        for message in messages:
            tp, offset = message.message.tp, message.message.offset
            if offset > self._handled.get(tp, -1):
                self._handled[tp] = offset

    def live_waiting(self) -> bool:
        """Whether a live partition of this worker has events the live agent has not handled."""
        for tp in self._offsets.assignment():
            if tp.topic not in self._live:
                continue
            highwater = self._offsets.highwater(tp)
            if highwater is None:  # not fetched yet: it may hold a backlog, so wait for it a while
                if self._in_grace(tp):
                    return True
                continue
            handled = self._handled.get(tp)
            if handled is not None:
                if highwater > handled + 1:
                    return True
                continue
            committed = self._offsets.committed(tp)
            if committed is not None:
                if highwater > committed:
                    return True
            elif self._offsets.read_offset(tp) is not None:
                return True  # a new group: read into the live agent's buffer, not handled yet
            elif highwater > 0 and self._in_grace(tp):
                return True  # a new group reads from the start; the live agent has not had it yet
        return False

    def _in_grace(self, tp: TP) -> bool:
        return time.monotonic() < self._first_seen.setdefault(tp, time.monotonic()) + GRACE

    async def hold_historical(self, topic: str) -> None:
        """Until cancelled: keep ``topic``'s partitions paused while live events wait, resumed otherwise."""
        paused: frozenset[TP] = frozenset()
        paused_at = 0.0
        while True:
            tps = frozenset(tp for tp in self._offsets.assignment() if tp.topic == topic)
            if self.live_waiting():
                if tps - paused:  # newly assigned partitions too
                    await self._offsets.pause(tps)
                    if not paused:
                        paused_at = time.monotonic()
                        log.info("live events are waiting: %d partitions of %s paused", len(tps), topic)
                    paused = tps
            elif paused:
                log.info("live traffic caught up: %s resumed after %.1fs", topic, time.monotonic() - paused_at)
                await self._offsets.resume(paused & tps)
                telemetry.HISTORICAL_WAIT_SECONDS.inc(time.monotonic() - paused_at)
                paused = frozenset()
            await asyncio.sleep(POLL)
