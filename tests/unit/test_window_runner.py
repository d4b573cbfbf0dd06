"""The window steps (re-key, aggregate) over in-memory Kafka: the I/O seam is ``WindowIO``."""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest

from headwater.runtime.topology import AggregationSpec, WindowSpec
from schemas.serializer import encode_envelope
from streams.errors import WindowError
from streams.windows.runner import Aggregator, Message, Out, Rekeyer
from tests.support.windows import result

MINUTE = 60_000_000
BASE = 1_700_000_000 * 1_000_000 // MINUTE * MINUTE  # a minute's start, in microseconds
PARTITIONS = 3


def spec(**changes: Any) -> WindowSpec:
    fields: dict[str, Any] = {
        "name": "per_minute", "source": "events_processed", "key": ["team_id", "event"], "size_seconds": 60,
        "grace_seconds": 10, "idle_seconds": None, "output": "rollups",
        "aggregations": [AggregationSpec(name="events", function="count"),
                         AggregationSpec(name="users", function="uniq", field="distinct_id"),
                         AggregationSpec(name="revenue", function="sum", field="properties.price")]}
    return WindowSpec(**{**fields, **changes})


def processed(uuid: str, event: str, distinct_id: str, timestamp: int, price: float | None = None) -> dict[str, Any]:
    props = {} if price is None else {"price": price}
    return {"uuid": uuid, "event": event, "properties": orjson.dumps(props).decode(), "timestamp": timestamp,
            "team_id": 1, "distinct_id": distinct_id, "elements_chain": "", "created_at": timestamp,
            "person_id": "p", "person_properties": "{}", "person_created_at": None, "person_mode": "full",
            "group_0": "", "group_1": "", "group_2": "", "group_3": "", "group_4": "",
            "historical_migration": False}


class Topic:
    """A topic's partitions, as lists of messages."""

    def __init__(self, partitions: int) -> None:
        self.partitions: list[list[Message]] = [[] for _ in range(partitions)]

    def append(self, out: Out) -> None:
        partition = out.partition if out.partition is not None else zlib.crc32(out.key) % len(self.partitions)
        log = self.partitions[partition]
        log.append(Message(partition, len(log), out.key, out.value))


class MemoryIO:
    """A consumer of one topic (committed offsets, a read position) and a producer to named topics."""

    def __init__(self, source: Topic, topics: dict[str, Topic], batch: int = 1_000) -> None:
        self.source = source
        self.topics = topics
        self.batch = batch
        self.committed = [0] * len(source.partitions)
        self.position = [0] * len(source.partitions)

    def restart(self) -> None:
        """A crash: read again from the committed offsets."""
        self.position = list(self.committed)

    async def fetch(self, timeout: float) -> list[Message]:
        got: list[Message] = []
        for p, log in enumerate(self.source.partitions):
            taken = log[self.position[p]:self.position[p] + self.batch]
            self.position[p] += len(taken)
            got += taken
        return got

    def assigned(self) -> set[int]:
        return set(range(len(self.source.partitions)))

    async def send(self, messages: Sequence[Out]) -> None:
        for out in messages:
            self.topics[out.topic].append(out)

    async def commit(self, offsets: Mapping[int, int]) -> None:
        for p, offset in offsets.items():
            self.committed[p] = offset


class MemoryChangelog:
    def __init__(self, topic: Topic) -> None:
        self.topic = topic

    async def last(self, partition: int) -> bytes | None:
        log = self.topic.partitions[partition]
        return log[-1].value if log else None


class Pipeline:
    """Source → re-key → repartition → aggregate → output, all in memory."""

    def __init__(self, window: WindowSpec, clock: list[float]) -> None:
        self.window = window
        self.clock = clock
        self.source = Topic(PARTITIONS)
        self.repartition = Topic(PARTITIONS)
        self.changelog = Topic(PARTITIONS)
        self.output = Topic(1)
        self.late = Topic(1)
        topics = {window.repartition("hw"): self.repartition, window.changelog("hw"): self.changelog,
                  window.output: self.output, "late": self.late}
        self.rekey_io = MemoryIO(self.source, topics)
        self.aggregate_io = MemoryIO(self.repartition, topics)
        self.rekeyer = Rekeyer(window, "hw", self.rekey_io, PARTITIONS)
        self.aggregator = self.new_aggregator()

    def new_aggregator(self) -> Aggregator:
        return Aggregator(self.window, "hw", self.aggregate_io, MemoryChangelog(self.changelog),
                          clock=lambda: self.clock[0])

    def send(self, partition: int, records: list[dict[str, Any]]) -> None:
        log = self.source.partitions[partition]
        log.append(Message(partition, len(log), None, encode_envelope("processed_envelope", records)))

    def run(self) -> None:
        async def both() -> None:
            await self.rekeyer.step()
            await self.aggregator.step()

        asyncio.run(both())

    def results(self) -> list[dict[str, Any]]:
        return [result(m.value) for m in self.output.partitions[0]]


def by_window(results: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["key"]["event"], r["start"]): r["values"] for r in results}


def test_windows_count_what_a_group_by_counts_and_late_events_are_counted_not_added() -> None:
    pipe = Pipeline(spec(late_topic="late"), [0.0])
    # out of order within grace (the 0:30 event after 1:05), across partitions and users
    pipe.send(0, [processed("a", "buy", "u1", BASE + 5_000_000, 3.0),
                  processed("b", "buy", "u2", BASE + 65_000_000, 4)])
    pipe.send(1, [processed("c", "buy", "u1", BASE + 30_000_000, 2.5), processed("d", "view", "u3", BASE + 1)])
    pipe.run()
    assert pipe.results() == []  # nothing closed: no watermark has passed 1:10
    pipe.send(0, [processed("e", "buy", "u1", BASE + 2 * MINUTE + 20_000_000)])  # 2:20 closes minute 0 for its key
    pipe.send(1, [processed("f", "view", "u1", BASE + 3 * MINUTE)])
    pipe.run()
    pipe.send(0, [processed("g", "buy", "u9", BASE + 10_000_000)])  # minute 0 of buy has closed: late
    pipe.run()
    windows = by_window(pipe.results())
    assert windows[("buy", BASE)] == {"events": 2, "users": 1, "revenue": 5.5}
    assert windows[("view", BASE)] == {"events": 1, "users": 1, "revenue": 0.0}
    assert windows[("buy", BASE + MINUTE)] == {"events": 1, "users": 1, "revenue": 4.0}
    assert Counter((r["key"]["event"], r["start"]) for r in pipe.results()).most_common(1)[0][1] == 1
    late = [orjson.loads(m.value) for m in pipe.late.partitions[0]]  # one message per late event
    assert [r["u"] for r in late] == ["g"]


def test_hopping_windows_hold_each_event_in_size_over_step_windows() -> None:
    pipe = Pipeline(spec(size_seconds=120, step_seconds=60, grace_seconds=0), [0.0])
    pipe.send(0, [processed("a", "buy", "u1", BASE + MINUTE + 1), processed("z", "buy", "u1", BASE + 10 * MINUTE)])
    pipe.run()
    windows = by_window(pipe.results())
    assert {start - BASE: values["events"] for (_, start), values in windows.items()} == {0: 1, MINUTE: 1}


def test_a_crash_replays_batches_without_counting_or_emitting_anything_twice() -> None:
    pipe = Pipeline(spec(), [0.0])
    events = [processed(f"e{i}", "buy", f"u{i % 4}", BASE + i * 1_000_000) for i in range(50)]
    pipe.send(0, events[:25])
    pipe.send(2, events[25:])
    pipe.run()
    # both steps die before committing: the re-keyer sends its batch again, the aggregator starts
    # over from its changelog and reads everything since its last commit
    pipe.rekey_io.committed = [0] * PARTITIONS
    pipe.aggregate_io.committed = [0] * PARTITIONS
    pipe.rekey_io.restart()
    pipe.aggregate_io.restart()
    pipe.aggregator = pipe.new_aggregator()
    pipe.send(0, [processed("close", "buy", "u1", BASE + 5 * MINUTE)])
    pipe.run()
    rekeyed = [r for p in pipe.repartition.partitions for m in p for r in orjson.loads(m.value)]
    assert len(rekeyed) == 101  # every event re-keyed twice, and one more
    closed = [r for r in pipe.results() if r["start"] == BASE]
    assert len(closed) == 1
    assert closed[0]["values"] == {"events": 50, "users": 4, "revenue": 0.0}


def test_an_idle_partition_moves_its_watermark_on_and_closes_its_windows() -> None:
    clock = [1_000.0]
    pipe = Pipeline(spec(idle_seconds=30), clock)
    pipe.send(1, [processed("a", "buy", "u1", BASE + 1)])
    pipe.run()
    assert pipe.results() == []
    clock[0] += 100.0  # 100 s of wall time with no event: past the window's end and grace
    pipe.run()
    assert by_window(pipe.results()) == {("buy", BASE): {"events": 1, "users": 1, "revenue": 0.0}}


def test_a_topic_of_other_records_stops_the_window_with_a_clear_error() -> None:
    pipe = Pipeline(spec(), [0.0])
    log = pipe.source.partitions[0]
    warning = {"team_id": 1, "source": "x", "type": "t", "event_uuid": "u", "details": "{}", "timestamp": 1}
    log.append(Message(0, 0, None, encode_envelope("ingestion_warnings", [warning])))
    with pytest.raises(WindowError, match="holds ingestion_warnings envelopes, not events"):
        pipe.run()
