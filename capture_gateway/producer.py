"""The gateway's Kafka producer: envelopes out, a delivery report per envelope on the event loop.

confluent-kafka (librdkafka) with ``acks=all``, idempotence and lz4. ``produce`` enqueues a
message with a callback. While messages are in flight the event loop polls librdkafka every
``POLL_INTERVAL`` (``poll(0)`` only drains the queue of delivery reports librdkafka's own
threads filled), so the callbacks run on the loop thread: no thread of ours, no hand-over
between threads, no fight for the GIL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from headwater.errors import Unavailable

DeliveryCallback = Callable[[str | None], None]


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    partition: int | None  # None: the producer's partitioner picks one
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class KafkaProducer:
    """Produces envelopes and awaits their acknowledgement."""

    METADATA_TTL = 30.0
    POLL_INTERVAL = 0.001

    def __init__(self, bootstrap: str, timeout: float) -> None:
        self.timeout = timeout
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "lz4",
            "linger.ms": 0,
            "message.timeout.ms": int(timeout * 1000),
            "message.max.bytes": 1_000_000,
            "queue.buffering.max.kbytes": 256 * 1024,
        })
        self._partitions: dict[str, tuple[int, float]] = {}
        self._in_flight = 0
        self._polling: asyncio.TimerHandle | None = None

    def _poll(self) -> None:
        """Run the delivery callbacks of what Kafka answered; again soon while anything is in flight."""
        self._polling = None
        self._producer.poll(0)
        if self._in_flight:
            self._polling = asyncio.get_running_loop().call_later(self.POLL_INTERVAL, self._poll)

    def cached_partitions(self, topic: str) -> int | None:
        """The last partition count seen for ``topic``, however old; None before the first look."""
        cached = self._partitions.get(topic)
        return cached[0] if cached is not None else None

    def partitions_stale(self, topic: str) -> bool:
        cached = self._partitions.get(topic)
        return cached is None or cached[1] <= time.monotonic()

    async def partitions(self, topic: str, fresh: bool = False) -> int:
        """How many partitions ``topic`` has; ``Unavailable`` when Kafka can't say.

        Cached for ``METADATA_TTL``, and the last count serves while Kafka is unreachable (the
        capture path: its produce then fails on its own). ``fresh`` asks the broker now and
        never falls back: readiness, which must say whether Kafka answers at this moment.
        """
        cached = self._partitions.get(topic)
        if not fresh and cached is not None and cached[1] > time.monotonic():
            return cached[0]
        try:
            meta = await asyncio.to_thread(self._producer.list_topics, topic, 2.0)
        except KafkaException as exc:
            if cached is not None and not fresh:
                return cached[0]
            raise Unavailable(f"Kafka is unreachable: {exc}", "kafka_unavailable") from exc
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise Unavailable(f"topic {topic!r} does not exist: run `headwater migrate`", "topic_missing")
        count = len(info.partitions)
        self._partitions[topic] = (count, time.monotonic() + self.METADATA_TTL)
        return count

    def produce(self, message: OutgoingMessage, on_delivery: DeliveryCallback) -> None:
        """Enqueue ``message``; ``on_delivery(None | error)`` runs on the event loop once Kafka reports.

        Raises ``Unavailable`` (and ``on_delivery`` is never called) when librdkafka's
        queue is full or it refuses the message.
        """

        def report(err: KafkaError | None, _msg: Message) -> None:  # inside poll(), on the loop thread
            self._in_flight -= 1
            on_delivery(None if err is None else err.str())

        try:
            self._producer.produce(
                message.topic, value=message.value, key=message.key,
                partition=-1 if message.partition is None else message.partition,
                headers=cast(list[tuple[str, str | bytes | None]], message.headers), on_delivery=report,
            )
        except BufferError as exc:
            raise Unavailable("the Kafka producer queue is full; retry shortly", "kafka_unavailable") from exc
        except KafkaException as exc:
            raise Unavailable(f"Kafka refused the message: {exc}", "kafka_unavailable") from exc
        self._in_flight += 1
        if self._polling is None:
            self._polling = asyncio.get_running_loop().call_later(self.POLL_INTERVAL, self._poll)

    def queue_length(self) -> int:
        return len(self._producer)

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued; return how many messages are still undelivered."""
        remaining = self._producer.flush(timeout)
        if self._polling is not None:
            self._polling.cancel()
            self._polling = None
        return int(remaining)
