"""``headwater lag``: every reader's committed offset, log end, lag in messages and in seconds, rates and status.

``LagProbe`` asks Kafka (one request per group for its offsets and members, one for every
partition's log start and end); ``Sampler`` keeps a rolling window of its samples and makes a
``LagReport`` of them, judged by ``headwater.ops.status``. Lag in seconds is the age of the
oldest message the group has not consumed, read from Kafka (its timestamp, which the gateway
sets when it produces the event's envelope): measured, not estimated from rates.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import OffsetSpec as _OffsetSpec  # type: ignore[attr-defined]  # untyped

from headwater.errors import NotRunningError
from headwater.ops.status import Sample, Status, judge, worst
from headwater.runtime.committed import CommittedOffsets
from headwater.runtime.topology.readers import Reader

TIMEOUT = 10.0
OLDEST_TIMEOUT = 5.0
"""How long reading the oldest unconsumed messages (for lag in seconds) may take."""

Partition = tuple[str, int]
OffsetSpec: Any = _OffsetSpec


@dataclass(frozen=True)
class Snapshot:
    """One look at the cluster: per group, its committed offsets and who has which partition;
    per partition, the log's start and end."""

    at: float
    committed: dict[str, dict[Partition, int]]
    assigned: dict[str, dict[Partition, str]]  # group → partition → member's client id
    members: dict[str, int]
    logs: dict[Partition, tuple[int, int]]


class LagProbe:
    """Asks one Kafka cluster about consumer groups (blocking calls; ``close`` when done)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        self._consumer: Consumer | None = None
        self._committed_offsets = CommittedOffsets(bootstrap, TIMEOUT)

    def partitions(self, topics: Iterable[str]) -> list[Partition]:
        """Every partition of ``topics`` that exists."""
        try:
            metadata = self._admin.list_topics(timeout=TIMEOUT)
        except KafkaException as exc:
            raise NotRunningError(f"Kafka at {self._bootstrap} does not answer ({exc}): is it running? "
                                  "(`headwater up` starts the local stack)") from exc
        found = []
        for topic in dict.fromkeys(topics):
            info = metadata.topics.get(topic)
            if info is not None and info.error is None:
                found += [(topic, p) for p in sorted(info.partitions)]
        return found

    def group_topics(self, group: str) -> list[str]:
        """The topics ``group`` has committed offsets for (a group named on the command line)."""
        return sorted({t for t, _ in self._committed(group)})

    def snapshot(self, groups: dict[str, list[Partition]]) -> Snapshot:
        every = sorted({tp for tps in groups.values() for tp in tps})
        committed = {group: self._committed_of(group, tps) for group, tps in groups.items()}
        assigned, members = self._assignments(list(groups))
        return Snapshot(time.time(), committed, assigned, members, self._logs(every))

    def oldest(self, positions: dict[Partition, int]) -> dict[Partition, float]:
        """The Kafka timestamp (seconds) of the message at each given offset, where there is one."""
        if not positions:
            return {}
        if self._consumer is None:
            self._consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "headwater-lag-probe",
                                       "enable.auto.commit": False, "log_level": 0, "fetch.max.bytes": 1 << 20,
                                       "max.partition.fetch.bytes": 1 << 16})
        self._consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in positions.items()])
        found: dict[Partition, float] = {}
        deadline = time.monotonic() + OLDEST_TIMEOUT
        while len(found) < len(positions) and time.monotonic() < deadline:
            for message in self._consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is not None:
                    continue
                where = (message.topic() or "", message.partition() or 0)
                if where in positions and where not in found:
                    _, millis = message.timestamp()
                    if millis > 0:
                        found[where] = millis / 1000
                    self._consumer.pause([TopicPartition(*where)])
        self._consumer.unassign()
        return found

    def close(self) -> None:
        self._committed_offsets.close()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _committed_of(self, group: str, partitions: list[Partition]) -> dict[Partition, int]:
        """The committed offsets of ``group`` on ``partitions`` (``headwater.runtime.committed``: not the
        admin client's call, which can crash on a cluster of several brokers)."""
        try:
            return self._committed_offsets.get(group, partitions)
        except KafkaException as exc:
            raise NotRunningError(f"Kafka did not give the offsets of group {group!r}: {exc}") from exc

    def _committed(self, group: str) -> dict[Partition, int]:
        """Every committed offset of ``group``, whatever its topics (a group named on the command line)."""
        futures = self._admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                          request_timeout=TIMEOUT)
        try:
            result = futures[group].result()
        except KafkaException as exc:
            raise NotRunningError(f"Kafka did not give the offsets of group {group!r}: {exc}") from exc
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []
                if tp.offset != OFFSET_INVALID and tp.offset >= 0}

    def _assignments(self, groups: list[str]) -> tuple[dict[str, dict[Partition, str]], dict[str, int]]:
        assigned: dict[str, dict[Partition, str]] = {g: {} for g in groups}
        members: dict[str, int] = dict.fromkeys(groups, 0)
        if not groups:
            return assigned, members
        for group, future in self._admin.describe_consumer_groups(groups, request_timeout=TIMEOUT).items():
            try:
                description = future.result()
            except KafkaException:
                continue  # an unknown group: no members
            members[group] = len(description.members)
            for member in description.members:
                for tp in member.assignment.topic_partitions if member.assignment else []:
                    assigned[group][(tp.topic, tp.partition)] = member.client_id
        return assigned, members

    def _logs(self, partitions: Sequence[Partition]) -> dict[Partition, tuple[int, int]]:
        if not partitions:
            return {}
        ends = self._offsets(partitions, OffsetSpec.latest())
        starts = self._offsets(partitions, OffsetSpec.earliest())
        return {tp: (starts.get(tp, 0), ends[tp]) for tp in partitions if tp in ends}

    def _offsets(self, partitions: Sequence[Partition], spec: Any) -> dict[Partition, int]:
        futures = self._admin.list_offsets({TopicPartition(t, p): spec for t, p in partitions},
                                           request_timeout=TIMEOUT)
        found = {}
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException as exc:
                raise NotRunningError(f"Kafka did not give the offsets of {tp.topic}[{tp.partition}]: {exc}") from exc
        return found


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    lag_seconds: float
    consume_rate: float | None  # messages/s the group committed over the window
    produce_rate: float | None  # messages/s appended to the partition over the window
    catch_up_seconds: float | None  # at these rates; None: never (it does not catch up)
    member: str | None
    status: Status
    rule: str


@dataclass(frozen=True)
class GroupLag:
    role: str
    group: str
    members: int
    status: Status
    rule: str  # the worst partition's rule, with the partition
    lag: int
    lag_seconds: float
    partitions: list[PartitionLag]


@dataclass(frozen=True)
class LagReport:
    at: float
    window_seconds: float
    status: Status
    groups: list[GroupLag]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sampler:
    """Samples the readers' partitions, keeps those of the last ``window`` seconds, and reports on them."""

    probe: LagProbe
    readers: list[Reader]
    window: float
    history: deque[Snapshot] = field(default_factory=deque)
    _partitions: dict[str, list[Partition]] = field(default_factory=dict)

    def sample(self) -> Snapshot:
        if not self._partitions:
            self._partitions = self._groups()
        snapshot = self.probe.snapshot(self._partitions)
        self.history.append(snapshot)
        while len(self.history) > 2 and snapshot.at - self.history[1].at >= self.window:
            self.history.popleft()
        return snapshot

    def report(self) -> LagReport:
        first, last = self.history[0], self.history[-1]
        stamps: dict[str, dict[Partition, float]] = {}
        for group, partitions in self._partitions.items():
            waiting = {}  # the first message the group has not consumed, where it has not consumed them all
            for tp in partitions:
                start, end = last.logs.get(tp, (0, 0))
                offset = max(last.committed[group].get(tp, start), start)
                if end > offset:
                    waiting[tp] = offset
            stamps[group] = self.probe.oldest(waiting)
        groups = [self._group(reader, first, last, stamps[reader.group]) for reader in self.readers]
        return LagReport(last.at, last.at - first.at, worst([g.status for g in groups]), groups)

    def _groups(self) -> dict[str, list[Partition]]:
        every: dict[str, list[Partition]] = {}
        for reader in self.readers:
            every.setdefault(reader.group, [])
            every[reader.group] += self.probe.partitions(reader.topics)
        return every

    def _reader_partitions(self, reader: Reader) -> list[Partition]:
        return [tp for tp in self._partitions.get(reader.group, []) if tp[0] in reader.topics]

    def _group(self, reader: Reader, first: Snapshot, last: Snapshot, stamps: dict[Partition, float]) -> GroupLag:
        partitions = []
        span = last.at - first.at
        for tp in self._reader_partitions(reader):
            samples = [Sample(s.at, s.committed.get(reader.group, {}).get(tp), *s.logs.get(tp, (0, 0)))
                       for s in self.history]
            member = last.assigned.get(reader.group, {}).get(tp)
            status, rule = judge(samples, member is not None)
            now = samples[-1]
            consume = produce = None
            if span > 0 and samples[0].committed is not None and now.committed is not None:
                consume = (now.committed - samples[0].committed) / span
            if span > 0:
                produce = (now.end - samples[0].end) / span
            catch_up: float | None = 0.0 if now.lag == 0 else None
            if now.lag and consume is not None and produce is not None and consume > produce:
                catch_up = now.lag / (consume - produce)
            age = max(0.0, last.at - stamps[tp]) if now.lag and tp in stamps else 0.0
            partitions.append(PartitionLag(tp[0], tp[1], now.committed, now.end, now.lag, round(age, 3),
                                           consume, produce, catch_up, member, status, rule))
        status = worst([p.status for p in partitions])
        culprit = next((p for p in partitions if p.status == status), None)
        rule = f"{culprit.topic}[{culprit.partition}]: {culprit.rule}" if culprit is not None else "no partitions yet"
        return GroupLag(reader.role, reader.group, last.members.get(reader.group, 0), status, rule,
                        sum(p.lag for p in partitions), max((p.lag_seconds for p in partitions), default=0.0),
                        partitions)
