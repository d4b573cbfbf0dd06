"""The one commit order of a batch, owned by one object.

Every agent of the worker handles a batch of Kafka messages through a ``Checkpoint``: what it
produces goes through ``send`` (the producer's ack is kept), a sink registers its flush with
``on_flush``. ``commit`` then does, in this order and only this order:

1. run every registered flush (sinks write; the records they reject become dead letters);
2. await every producer ack: processed envelopes, dead letters, warnings (and whatever a later
   stage produces: person rows, window changelogs);
3. ack the batch's messages, so Faust may commit their offsets;
4. run the ``after_commit`` callbacks (counters of what is now durable).

A failure in 1 or 2 raises before 3: nothing of the batch is committed, the worker stops, and
the batch is read again after a restart (sinks are idempotent by event uuid). The batch loop
(``streams.batching``) calls ``commit``; handlers never ack.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from faust.types import EventT, TopicT
from faust.types.tuples import RecordMetadata

from schemas.dead_letter import Headers, dead_letter_headers
from streams import telemetry


class Checkpoint:
    """One batch's pending work; see the module docstring. Implements ``sinks.base.Batch``."""

    def __init__(self, messages: Sequence[EventT[bytes]], dead_letter_topic: TopicT) -> None:
        self.messages = messages
        self._dead_letter_topic = dead_letter_topic
        self._flushes: list[Callable[[], Awaitable[None]]] = []
        self._acks: list[Awaitable[RecordMetadata]] = []
        self._after: list[Callable[[], object]] = []
        self._dead_letters: Counter[tuple[str, str]] = Counter()  # (stage, reason) → letters, counted at commit

    async def send(self, topic: TopicT, value: bytes, *, key: bytes | None = None, partition: int | None = None,
                   headers: Headers | None = None) -> None:
        """Queue a message on ``topic``; the batch commits only after Kafka acknowledged it."""
        self._acks.append(await topic.send(key=key, value=value, partition=partition, headers=headers))

    async def dead_letter(self, value: bytes, key: bytes | None, *, reason: str, stage: str, error: str,
                          source_topic: str) -> None:
        """Queue a dead letter (format: ``schemas.dead_letter``) on the pipeline's dead-letter topic."""
        headers = dead_letter_headers(reason=reason, stage=stage, error=error, source_topic=source_topic)
        await self.send(self._dead_letter_topic, value, key=key, headers=headers)
        self._dead_letters[stage, reason] += 1

    def on_flush(self, flush: Callable[[], Awaitable[None]]) -> None:
        """Run ``flush`` at commit, before the producer's acks are awaited."""
        self._flushes.append(flush)

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once the batch is committed (to count what is now durable)."""
        self._after.append(callback)

    async def commit(self) -> None:
        """Flush sinks, await every producer ack, then ack the messages (see the module docstring)."""
        for flush in self._flushes:
            await flush()
        if self._acks:
            await asyncio.gather(*self._acks)
        for message in self.messages:
            message.ack()
        for (stage, reason), letters in self._dead_letters.items():
            telemetry.DEAD_LETTERS.labels(stage, reason).inc(letters)
        for callback in self._after:
            callback()
