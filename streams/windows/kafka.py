"""The windows' Kafka side: a consumer and an idempotent producer per step, the changelog reader,
and the worker tasks that run each declared window (``add_windows``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from headwater.runtime.topology import Topology, WindowSpec
from streams import lag_metrics
from streams.errors import WindowError
from streams.windows.runner import Aggregator, Message, Out, Rekeyer, Stored

if TYPE_CHECKING:
    import faust
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

log = logging.getLogger("headwater.windows")

POLL_RECORDS = 500
"""Messages one fetch returns: source envelopes (up to thousands of events each) or re-keyed records."""
MAX_POLL_SECONDS = 300


def consumer_group(app_id: str, window: str, step: str = "") -> str:
    """The step's consumer group: ``<app_id>-window_<name>`` (aggregate), ``...-rekey`` (re-key)."""
    return f"{app_id}-window_{window}" + (f"-{step}" if step else "")


class KafkaWindowIO:
    """``WindowIO`` over one consumer (its group's offsets, committed by ``commit``) and a producer."""

    def __init__(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str, group: str = "") -> None:
        self._consumer = consumer
        self._group = group
        self._producer = producer
        self._topic = topic
        self._revoked: set[int] = set()

    @classmethod
    def create(cls, kafka: str, group: str, topic: str) -> KafkaWindowIO:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka, group_id=group, client_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=POLL_RECORDS, session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000, max_poll_interval_ms=MAX_POLL_SECONDS * 1000)
        producer = AIOKafkaProducer(bootstrap_servers=kafka, client_id=group, acks="all", enable_idempotence=True,
                                    linger_ms=5, compression_type="lz4")
        return cls(consumer, producer, topic, group)

    async def start(self) -> None:
        from aiokafka.abc import ConsumerRebalanceListener

        io = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                io._revoked.update(tp.partition for tp in revoked)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                return None

        await self._producer.start()
        self._consumer.subscribe([self._topic], listener=Listener())
        await self._consumer.start()
        lag_metrics.watch(self._group, self._consumer.assignment)

    async def stop(self) -> None:
        lag_metrics.unwatch(self._group)
        await self._consumer.stop()
        await self._producer.stop()

    async def fetch(self, timeout: float) -> list[Message]:
        batches = await self._consumer.getmany(timeout_ms=int(timeout * 1000))
        return [Message(m.partition, m.offset, m.key, cast(bytes, m.value))
                for records in batches.values() for m in records]

    def assigned(self) -> set[int]:
        return {tp.partition for tp in self._consumer.assignment()}

    def take_revoked(self) -> set[int]:
        revoked, self._revoked = self._revoked, set()
        return revoked

    async def send(self, messages: Sequence[Out]) -> list[int]:
        acks = [await self._producer.send(m.topic, m.value, key=m.key, partition=m.partition) for m in messages]
        return [metadata.offset for metadata in await asyncio.gather(*acks)]

    async def commit(self, offsets: Mapping[int, int]) -> None:
        from aiokafka import TopicPartition
        from aiokafka.errors import CommitFailedError, IllegalStateError

        try:
            await self._consumer.commit({TopicPartition(self._topic, p): o for p, o in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # the partitions moved meanwhile: their new owner reads the batch again, and skips what was applied
            log.info("window offsets on %s not committed (%s): the partitions' new owner reads them again",
                     self._topic, exc)


class KafkaChangelog:
    """Reads a changelog partition: its newest message, or messages at known offsets."""

    def __init__(self, kafka: str, topic: str) -> None:
        self._kafka = kafka
        self._topic = topic

    async def last(self, partition: int) -> Stored | None:
        found = await self._read(partition, None, 1)
        return found[0] if found else None

    async def at(self, partition: int, offset: int) -> Stored | None:
        found = await self._read(partition, offset, 1)
        return found[0] if found and found[0].offset == offset else None

    async def many(self, partition: int, offsets: Sequence[int]) -> list[bytes]:
        wanted = set(offsets)
        found = {m.offset: m.value for m in await self._read(partition, offsets[0], offsets[-1] - offsets[0] + 1)
                 if m.offset in wanted}
        missing = wanted - set(found)
        if missing:
            raise WindowError(f"{self._topic} partition {partition} lost checkpoint chunks at {sorted(missing)}")
        return [found[o] for o in offsets]

    async def _read(self, partition: int, start: int | None, count: int) -> list[Stored]:
        """Up to ``count`` offsets' messages from ``start`` (None: the newest message only)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        tp = TopicPartition(self._topic, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._kafka, enable_auto_commit=False, group_id=None,
                                    max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if end == 0:
                return []
            first = end - 1 if start is None else start
            stop = min(end, first + count)
            consumer.seek(tp, first)
            got: list[Stored] = []
            while await consumer.position(tp) < stop:
                records = (await consumer.getmany(tp, timeout_ms=5_000)).get(tp, [])
                if not records:  # the rest was compacted away
                    break
                got += [Stored(m.offset, m.key or b"", cast(bytes, m.value)) for m in records
                        if m.offset < stop and m.value is not None]
            return got
        finally:
            await consumer.stop()


async def _loop(step: Callable[[], Awaitable[int]], stopping: Callable[[], bool]) -> None:
    while not stopping():
        await step()


def add_windows(app: faust.App, topology: Topology, kafka: str,
                crash: Callable[[BaseException], Awaitable[None]]) -> None:
    """Two tasks per declared window (re-key, unless the pipeline does it; aggregate), started with the
    worker; a failure stops it."""
    for spec in topology.windows:
        partitions = topology.kafka_topics()[spec.repartition(topology.app_id)].partitions
        _add_window(app, topology.app_id, spec, partitions, kafka, crash,
                    rekey_here=not topology.rekeyed_by_pipeline(spec))


def _add_window(app: faust.App, app_id: str, spec: WindowSpec, partitions: int, kafka: str,
                crash: Callable[[BaseException], Awaitable[None]], rekey_here: bool) -> None:
    async def rekey() -> None:
        io = KafkaWindowIO.create(kafka, consumer_group(app_id, spec.name, "rekey"), spec.source)
        rekeyer = Rekeyer(spec, app_id, io, partitions)
        await _run(f"window {spec.name} (re-key)", io, rekeyer.step)

    async def aggregate() -> None:
        io = KafkaWindowIO.create(kafka, consumer_group(app_id, spec.name), spec.repartition(app_id))
        aggregator = Aggregator(spec, app_id, io, KafkaChangelog(kafka, spec.changelog(app_id)))

        async def step() -> int:
            aggregator.forget(io.take_revoked())
            return await aggregator.step()

        await _run(f"window {spec.name}", io, step, aggregator.checkpoint)

    async def _run(what: str, io: KafkaWindowIO, step: Callable[[], Awaitable[int]],
                   finish: Callable[[], Awaitable[None]] | None = None) -> None:
        failed: BaseException | None = None
        try:
            await io.start()
            await _loop(step, lambda: bool(app.should_stop))
            if finish is not None:  # a clean stop: what was read since the last checkpoint is not read again
                await finish()
        except asyncio.CancelledError:
            raise
        except WindowError as exc:
            failed = exc
        except Exception as exc:  # noqa: BLE001 - Kafka gone for good, a send refused: the worker stops
            failed = WindowError(f"{what} cannot run: {type(exc).__name__}: {exc}")
        finally:
            await io.stop()
        if failed is not None and not app.should_stop:
            log.error("%s failed: %s", what, failed)
            await crash(failed)

    rekey.__name__ = f"window_{spec.name}_rekey"
    aggregate.__name__ = f"window_{spec.name}"
    if rekey_here:  # else the pipeline re-keys (streams.windows.tap)
        app.task(rekey)
    app.task(aggregate)
