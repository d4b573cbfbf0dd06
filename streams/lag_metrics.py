"""Consumer lag on the worker's ``/metrics``: ``headwater_consumer_*`` (named in ``streams.telemetry``).

Every few seconds (``INTERVAL_SECONDS``), never per event, a task of the worker looks at each
consumer group it runs (the Faust app's group, ``app_id``, reading the pipeline's sources and
every sink's; each plugin agent's and each window step's own group) and, for the partitions this
worker has assigned in that group, asks Kafka for the committed offset and the log end:

- lag in messages: log end minus the committed offset (a message is an envelope);
- lag in seconds: the age of the oldest message not committed, from the Kafka timestamp of the
  message at the committed offset (read once per offset, kept while the offset stays), 0 when
  caught up: measured, like ``headwater lag``'s;
- the committed offset itself (an alert sees a STALL: it stops moving while lag stays above 0);
- per group, how many partitions this worker has and how many the group's topics have (their
  difference, summed over workers, is what no worker reads: a STOP).

A partition this worker loses in a rebalance leaves its series (another worker reports it).
Asking Kafka blocks, so it runs in a thread; a failure is logged and counted
(``headwater_consumer_lag_probe_failures_total``) and the worker goes on.

The plugin agents' and windows' aiokafka consumers make themselves known with ``watch`` when
they start (and ``unwatch`` when they stop); the Faust consumer is the app's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust

from headwater.runtime.topology import Topology
from headwater.runtime.topology.readers import readers
from streams import telemetry

log = logging.getLogger("headwater.worker")

INTERVAL_SECONDS = 5.0
"""How often lag is measured."""
KAFKA_TIMEOUT_SECONDS = 5.0
"""How long one request to Kafka may take (each measurement makes a few)."""

Partition = tuple[str, int]
Assignment = Callable[[], Iterable[Any]]
"""A consumer's ``assignment()``: topic partitions (anything with ``topic`` and ``partition``)."""

_WATCHED: dict[str, Assignment] = {}


def watch(group: str, assignment: Assignment) -> None:
    """Measure ``group``'s lag on the partitions ``assignment()`` names (a consumer that started)."""
    if group:
        _WATCHED[group] = assignment


def unwatch(group: str) -> None:
    """The consumer of ``group`` stopped."""
    _WATCHED.pop(group, None)


def topology_groups(topology: Topology) -> dict[str, tuple[str, ...]]:
    """Every consumer group the worker runs for ``topology``, and the topics it reads there
    (``headwater.runtime.topology.readers``: the readers ``headwater lag`` shows, by group)."""
    groups: dict[str, list[str]] = {}
    for reader in readers(topology):
        groups.setdefault(reader.group, []).extend(reader.topics)
    return {group: tuple(dict.fromkeys(topics)) for group, topics in groups.items()}


@dataclass(frozen=True)
class Group:
    """One consumer group as this worker sees it: the topics it reads and what this worker has of them."""

    name: str
    topics: tuple[str, ...]
    assigned: frozenset[Partition]


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    lag: int
    lag_seconds: float


@dataclass
class Measurement:
    lags: list[PartitionLag] = field(default_factory=list)
    assigned: dict[str, int] = field(default_factory=dict)  # group → partitions this worker has
    partitions: dict[str, int] = field(default_factory=dict)  # group → partitions of its topics


class KafkaOffsets(Protocol):
    """What the meter asks Kafka (blocking calls)."""

    def partition_counts(self, topics: Sequence[str]) -> dict[str, int]: ...

    def committed(self, group: str, partitions: Sequence[Partition]) -> dict[Partition, int]: ...

    def log_bounds(self, partitions: Sequence[Partition]) -> dict[Partition, tuple[int, int]]:
        """Each partition's log start and end."""
        ...

    def timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, float]:
        """The Kafka timestamp (seconds) of the message at each offset, where one could be read."""
        ...

    def close(self) -> None: ...


class LagMeter:
    """Measures groups' lag through ``KafkaOffsets`` (blocking: call ``measure`` in a thread)."""

    def __init__(self, kafka: KafkaOffsets, clock: Callable[[], float] = time.time) -> None:
        self._kafka = kafka
        self._clock = clock
        self._stamps: dict[tuple[str, int, int], float] = {}  # (topic, partition, offset) → its timestamp

    def measure(self, groups: Sequence[Group]) -> Measurement:
        found = Measurement()
        counts = self._kafka.partition_counts(sorted({t for g in groups for t in g.topics}))
        every = sorted({tp for g in groups for tp in g.assigned if tp[0] in g.topics})
        bounds = self._kafka.log_bounds(every) if every else {}
        waiting: dict[str, dict[Partition, int]] = {}  # group → partition → first offset not committed
        for group in groups:
            found.partitions[group.name] = sum(counts.get(topic, 0) for topic in group.topics)
            mine = sorted(tp for tp in group.assigned if tp[0] in group.topics and tp in bounds)
            found.assigned[group.name] = len(mine)
            if not mine:
                continue
            committed = self._kafka.committed(group.name, mine)
            waiting[group.name] = {tp: max(committed.get(tp, bounds[tp][0]), bounds[tp][0]) for tp in mine}
        unknown = {tp: offset for positions in waiting.values() for tp, offset in positions.items()
                   if offset < bounds[tp][1] and (*tp, offset) not in self._stamps}
        if unknown:
            for (topic, partition), read in self._kafka.timestamps(unknown).items():
                self._stamps[topic, partition, unknown[topic, partition]] = read
        now = self._clock()
        kept: dict[tuple[str, int, int], float] = {}
        for group_name, positions in waiting.items():
            for (topic, partition), offset in positions.items():
                lag = max(0, bounds[topic, partition][1] - offset)
                stamp = self._stamps.get((topic, partition, offset))
                if stamp is not None:
                    kept[topic, partition, offset] = stamp
                seconds = 0.0 if lag == 0 else max(0.0, now - stamp) if stamp is not None else float("nan")
                found.lags.append(PartitionLag(group_name, topic, partition, offset, lag, seconds))
        self._stamps = kept
        return found

    def close(self) -> None:
        self._kafka.close()


LabelSet = tuple[str, str, str]


def publish(measurement: Measurement, shown: set[LabelSet]) -> set[LabelSet]:
    """Set the ``headwater_consumer_*`` gauges; the partitions shown before and not now lose their series.
    Returns the label sets shown now. A lag in seconds that could not be read keeps its last value."""
    now: set[LabelSet] = set()
    for lag in measurement.lags:
        labels = (lag.group, lag.topic, str(lag.partition))
        now.add(labels)
        telemetry.CONSUMER_LAG_MESSAGES.labels(*labels).set(lag.lag)
        telemetry.CONSUMER_COMMITTED_OFFSET.labels(*labels).set(lag.committed)
        if lag.lag_seconds == lag.lag_seconds:  # not NaN: the oldest message's timestamp was read
            telemetry.CONSUMER_LAG_SECONDS.labels(*labels).set(lag.lag_seconds)
    for labels in shown - now:
        for gauge in (telemetry.CONSUMER_LAG_MESSAGES, telemetry.CONSUMER_LAG_SECONDS,
                      telemetry.CONSUMER_COMMITTED_OFFSET):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
    for group, count in measurement.assigned.items():
        telemetry.CONSUMER_ASSIGNED_PARTITIONS.labels(group).set(count)
    for group, count in measurement.partitions.items():
        telemetry.CONSUMER_PARTITIONS.labels(group).set(count)
    return now


class ConfluentOffsets:
    """``KafkaOffsets`` over confluent-kafka's admin client and one assign-only consumer (no group joined)."""

    def __init__(self, bootstrap: str, timeout: float = KAFKA_TIMEOUT_SECONDS) -> None:
        from confluent_kafka.admin import AdminClient

        self._bootstrap = bootstrap
        self._timeout = timeout
        self._admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        self._consumer: Any = None
        self._committed_offsets: Any = None  # headwater.runtime.committed.CommittedOffsets, made on first use

    def partition_counts(self, topics: Sequence[str]) -> dict[str, int]:
        metadata = self._admin.list_topics(timeout=self._timeout)
        counts = {}
        for topic in topics:
            info = metadata.topics.get(topic)
            if info is not None and info.error is None:
                counts[topic] = len(info.partitions)
        return counts

    def committed(self, group: str, partitions: Sequence[Partition]) -> dict[Partition, int]:
        # Not the admin client's list_consumer_group_offsets: it can crash the worker on a cluster of
        # several brokers (headwater.runtime.committed says why).
        if self._committed_offsets is None:
            from headwater.runtime.committed import CommittedOffsets

            self._committed_offsets = CommittedOffsets(self._bootstrap, self._timeout)
        found: dict[Partition, int] = self._committed_offsets.get(group, partitions)
        return found

    def log_bounds(self, partitions: Sequence[Partition]) -> dict[Partition, tuple[int, int]]:
        from confluent_kafka import admin

        spec: Any = admin.OffsetSpec  # type: ignore[attr-defined]  # untyped
        starts = self._offsets(partitions, spec.earliest())
        ends = self._offsets(partitions, spec.latest())
        return {tp: (starts[tp], ends[tp]) for tp in partitions if tp in starts and tp in ends}

    def _offsets(self, partitions: Sequence[Partition], spec: Any) -> dict[Partition, int]:
        from confluent_kafka import TopicPartition

        futures = self._admin.list_offsets({TopicPartition(t, p): spec for t, p in partitions},
                                           request_timeout=self._timeout)
        return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}

    def timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, float]:
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "headwater-lag-metrics",
                                       "enable.auto.commit": False, "log_level": 0,
                                       "max.partition.fetch.bytes": 1 << 16})
        self._consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in positions.items()])
        found: dict[Partition, float] = {}
        deadline = time.monotonic() + self._timeout
        try:
            while len(found) < len(positions) and time.monotonic() < deadline:
                for message in self._consumer.consume(num_messages=100, timeout=0.5):
                    where = (message.topic() or "", message.partition() or 0)
                    if message.error() is not None or where not in positions or where in found:
                        continue
                    _, millis = message.timestamp()
                    if millis > 0:
                        found[where] = millis / 1000
                    self._consumer.pause([TopicPartition(*where)])
        finally:
            self._consumer.unassign()
        return found

    def close(self) -> None:
        if self._committed_offsets is not None:
            self._committed_offsets.close()
            self._committed_offsets = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _partitions(assignment: Assignment | None) -> frozenset[Partition]:
    if assignment is None:
        return frozenset()
    try:
        return frozenset((tp.topic, tp.partition) for tp in assignment())
    except Exception:  # noqa: BLE001 - a consumer not started yet, or rebalancing: nothing assigned now
        return frozenset()


def add_lag_metrics(app: faust.App, topology: Topology, kafka: str, interval: float = INTERVAL_SECONDS) -> None:
    """A task of ``app`` that measures the lag of every group the worker runs every ``interval`` seconds."""
    groups = topology_groups(topology)

    def faust_assignment() -> Iterable[Any]:
        return app.consumer.assignment()  # looked up each time: the app makes its consumer when it starts

    def assignment(group: str) -> Assignment | None:
        return faust_assignment if group == topology.app_id else _WATCHED.get(group)

    async def lag_metrics() -> None:
        meter = LagMeter(ConfluentOffsets(kafka))
        shown: set[LabelSet] = set()
        measuring: asyncio.Future[Measurement] | None = None
        try:
            while True:
                views = [Group(name, topics, _partitions(assignment(name))) for name, topics in groups.items()]
                measuring = asyncio.ensure_future(asyncio.to_thread(meter.measure, views))
                try:
                    measurement = await asyncio.shield(measuring)
                except Exception as exc:  # noqa: BLE001 - Kafka slow or away: no lag this time, the worker goes on
                    telemetry.CONSUMER_LAG_PROBE_FAILURES.inc()
                    log.warning("consumer lag not measured: %s: %s", type(exc).__name__, exc)
                else:
                    shown = publish(measurement, shown)
                await asyncio.sleep(interval)
        finally:
            if measuring is None or measuring.done():  # else its thread still uses the consumer; the process ends
                meter.close()

    lag_metrics.__name__ = "lag_metrics"
    app.task(lag_metrics)
