"""streams.lag_metrics: lag in messages and seconds for the partitions this worker has, measured from
what Kafka says (a fake here), published as gauges that follow the assignment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import REGISTRY

from headwater.runtime.topology import load_topology
from streams import lag_metrics
from streams.lag_metrics import Group, LagMeter, Measurement, Partition, PartitionLag, publish, topology_groups
from tests.support import DEFAULT_TOPOLOGY

NOW = 1_000_000.0


class FakeKafka:
    def __init__(self) -> None:
        self.counts = {"raw": 2, "processed": 1}
        self.committed_offsets: dict[str, dict[Partition, int]] = {}
        self.bounds: dict[Partition, tuple[int, int]] = {
            ("raw", 0): (0, 10), ("raw", 1): (5, 5), ("processed", 0): (0, 3)}
        self.stamps: dict[tuple[str, int, int], float] = {}
        self.timestamp_reads: list[dict[Partition, int]] = []

    def partition_counts(self, topics: Sequence[str]) -> dict[str, int]:
        return {t: self.counts[t] for t in topics if t in self.counts}

    def committed(self, group: str, partitions: Sequence[Partition]) -> dict[Partition, int]:
        return {tp: o for tp, o in self.committed_offsets.get(group, {}).items() if tp in partitions}

    def log_bounds(self, partitions: Sequence[Partition]) -> dict[Partition, tuple[int, int]]:
        return {tp: self.bounds[tp] for tp in partitions if tp in self.bounds}

    def timestamps(self, positions: Mapping[Partition, int]) -> dict[Partition, float]:
        self.timestamp_reads.append(dict(positions))
        return {tp: self.stamps[(*tp, o)] for tp, o in positions.items() if (*tp, o) in self.stamps}

    def close(self) -> None:
        pass


def _groups(assigned: set[Partition]) -> list[Group]:
    return [Group("app", ("raw", "processed"), frozenset(assigned)), Group("app-agent_a", ("processed",), frozenset())]


def test_lag_is_log_end_minus_committed_and_its_age_is_the_oldest_uncommitted_message() -> None:
    kafka = FakeKafka()
    kafka.committed_offsets["app"] = {("raw", 0): 4, ("raw", 1): 5, ("processed", 0): 3}
    kafka.stamps[("raw", 0, 4)] = NOW - 42
    meter = LagMeter(kafka, clock=lambda: NOW)
    found = meter.measure(_groups({("raw", 0), ("raw", 1), ("processed", 0), ("other", 0)}))
    assert sorted(found.lags, key=lambda lag: (lag.topic, lag.partition)) == [
        PartitionLag("app", "processed", 0, 3, 0, 0.0),
        PartitionLag("app", "raw", 0, 4, 6, 42.0),
        PartitionLag("app", "raw", 1, 5, 0, 0.0),
    ]
    assert found.assigned == {"app": 3, "app-agent_a": 0}
    assert found.partitions == {"app": 3, "app-agent_a": 1}
    assert kafka.timestamp_reads == [{("raw", 0): 4}]  # only where messages wait

    meter.measure(_groups({("raw", 0)}))  # same committed offset: its timestamp is not read again
    assert kafka.timestamp_reads == [{("raw", 0): 4}]


def test_a_group_that_never_committed_lags_from_the_log_start_and_an_unread_age_is_unknown() -> None:
    kafka = FakeKafka()
    kafka.bounds[("raw", 0)] = (2, 10)
    found = LagMeter(kafka, clock=lambda: NOW).measure(_groups({("raw", 0)}))
    [lag] = found.lags
    assert (lag.committed, lag.lag) == (2, 8)
    assert lag.lag_seconds != lag.lag_seconds  # NaN: the timestamp could not be read


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_published_gauges_follow_the_assignment() -> None:
    first = Measurement([PartitionLag("pub", "raw", 0, 4, 6, 42.0), PartitionLag("pub", "raw", 1, 5, 0, 0.0)],
                        {"pub": 2}, {"pub": 3})
    shown = publish(first, set())
    labels = {"group": "pub", "topic": "raw", "partition": "0"}
    assert _value("headwater_consumer_lag_messages", **labels) == 6
    assert _value("headwater_consumer_lag_seconds", **labels) == 42
    assert _value("headwater_consumer_committed_offset", **labels) == 4
    assert _value("headwater_consumer_assigned_partitions", group="pub") == 2
    assert _value("headwater_consumer_partitions", group="pub") == 3

    unknown_age = Measurement([PartitionLag("pub", "raw", 0, 5, 5, float("nan"))], {"pub": 1}, {"pub": 3})
    shown = publish(unknown_age, shown)  # partition 1 went to another worker
    assert _value("headwater_consumer_lag_messages", group="pub", topic="raw", partition="1") is None
    assert _value("headwater_consumer_lag_seconds", **labels) == 42  # kept: not measured this time
    assert _value("headwater_consumer_lag_messages", **labels) == 5
    assert shown == {("pub", "raw", "0")}


def test_the_groups_of_a_topology_are_those_headwater_lag_reads() -> None:
    from headwater.runtime.topology.readers import readers

    default_topology = load_topology(DEFAULT_TOPOLOGY)
    assert default_topology.windows  # the default has windows: their groups are covered too

    expected: dict[str, set[str]] = {}
    for reader in readers(default_topology):
        expected.setdefault(reader.group, set()).update(reader.topics)
    assert {g: set(t) for g, t in topology_groups(default_topology).items()} == expected


def test_consumers_make_themselves_known_and_leave() -> None:
    lag_metrics.watch("app-window_w", lambda: [])
    assert "app-window_w" in lag_metrics._WATCHED
    lag_metrics.unwatch("app-window_w")
    assert "app-window_w" not in lag_metrics._WATCHED
