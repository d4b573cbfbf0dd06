"""The gateway's Kafka producer: envelopes out, one awaitable per request.

confluent-kafka (librdkafka) with ``acks=all``, idempotence and lz4. A thread polls for
delivery reports and resolves asyncio futures, so a request is answered only once Kafka
acknowledged every envelope of it, and any failure or timeout fails the whole request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from capture_gateway.errors import ServiceUnavailable


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

    def __init__(self, bootstrap: str, timeout: float) -> None:
        self._timeout = timeout
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "lz4",
            "linger.ms": 2,
            "message.timeout.ms": int(timeout * 1000),
            "message.max.bytes": 1_000_000,
            "queue.buffering.max.kbytes": 256 * 1024,
        })
        self._partitions: dict[str, tuple[int, float]] = {}
        self._reports: list[tuple[asyncio.Future[None], KafkaError | None]] = []
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery-reports", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        # Delivery callbacks run inside poll() on this thread and only collect their reports;
        # one call_soon_threadsafe per poll hands the whole lot to the event loop, instead of
        # one wake-up (and GIL hand-over) per message.
        while self._running:
            self._producer.poll(0.05)
            if self._reports:
                reports, self._reports = self._reports, []
                reports[0][0].get_loop().call_soon_threadsafe(_settle_all, reports)

    async def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (cached); ``ServiceUnavailable`` when Kafka can't say."""
        cached = self._partitions.get(topic)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        try:
            meta = await asyncio.to_thread(self._producer.list_topics, topic, 2.0)
        except KafkaException as exc:
            if cached is not None:
                return cached[0]
            raise ServiceUnavailable(f"Kafka is unreachable: {exc}") from exc
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise ServiceUnavailable(f"topic {topic!r} does not exist: run `headwater migrate`", "topic_missing")
        count = len(info.partitions)
        self._partitions[topic] = (count, time.monotonic() + self.METADATA_TTL)
        return count

    async def send(self, messages: Sequence[OutgoingMessage]) -> None:
        """Produce every message and return once all were acknowledged; else ``ServiceUnavailable``."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []

        def report(fut: asyncio.Future[None]) -> Callable[[KafkaError | None, Message], None]:
            def on_delivery(err: KafkaError | None, _msg: Message) -> None:
                self._reports.append((fut, err))  # on the poll thread; handed over after poll() returns
            return on_delivery

        for message in messages:
            fut: asyncio.Future[None] = loop.create_future()
            headers: list[tuple[str, str | bytes | None]] = list(message.headers)
            try:
                self._producer.produce(
                    message.topic, value=message.value, key=message.key,
                    partition=-1 if message.partition is None else message.partition,
                    headers=headers, on_delivery=report(fut),
                )
            except BufferError as exc:
                fut.cancel()
                raise ServiceUnavailable("the Kafka producer queue is full; retry shortly") from exc
            except KafkaException as exc:
                fut.cancel()
                raise ServiceUnavailable(f"Kafka refused the message: {exc}") from exc
            futures.append(fut)
        try:
            async with asyncio.timeout(self._timeout + 2.0):
                for fut in futures:  # librdkafka reports every message; wait for each in turn
                    await fut
        except TimeoutError as exc:
            raise ServiceUnavailable(f"Kafka did not acknowledge within {self._timeout:.0f}s") from exc
        finally:
            for fut in futures:  # after a failure: nothing left pending or unretrieved
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()

    def queue_length(self) -> int:
        return len(self._producer)

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued; return how many messages are still undelivered."""
        remaining = self._producer.flush(timeout)
        self._running = False
        self._poller.join(timeout=1.0)
        return int(remaining)


def _settle_all(reports: list[tuple[asyncio.Future[None], KafkaError | None]]) -> None:
    for fut, err in reports:
        if fut.done():
            continue
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(ServiceUnavailable(f"Kafka did not take the message: {err.str()}"))
