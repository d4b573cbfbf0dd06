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
from streams.event import Position
from streams.windows import runner
from streams.windows.runner import Aggregator, Message, Out, Rekeyer, Stored
from streams.windows.tap import WindowTap
from tests.support.records import processed
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


class Topic:
    """A topic's partitions, as lists of messages."""

    def __init__(self, partitions: int) -> None:
        self.partitions: list[list[Message]] = [[] for _ in range(partitions)]

    def append(self, out: Out) -> int:
        partition = out.partition if out.partition is not None else zlib.crc32(out.key) % len(self.partitions)
        log = self.partitions[partition]
        log.append(Message(partition, len(log), out.key, out.value))
        return len(log) - 1


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

    async def send(self, messages: Sequence[Out]) -> list[int]:
        return [self.topics[out.topic].append(out) for out in messages]

    async def commit(self, offsets: Mapping[int, int]) -> None:
        for p, offset in offsets.items():
            self.committed[p] = offset


class MemoryChangelog:
    def __init__(self, topic: Topic) -> None:
        self.topic = topic

    @staticmethod
    def _stored(message: Message) -> Stored:
        return Stored(message.offset, message.key or b"", message.value)

    async def last(self, partition: int) -> Stored | None:
        log = self.topic.partitions[partition]
        return self._stored(log[-1]) if log else None

    async def at(self, partition: int, offset: int) -> Stored | None:
        return self._stored(self.topic.partitions[partition][offset])

    async def many(self, partition: int, offsets: Sequence[int]) -> list[bytes]:
        return [self.topic.partitions[partition][o].value for o in offsets]


class Pipeline:
    """Source → re-key → repartition → aggregate → output, all in memory."""

    def __init__(self, window: WindowSpec, clock: list[float], checkpoint_seconds: float = 0.0) -> None:
        self.window = window
        self.clock = clock
        self.checkpoint_seconds = checkpoint_seconds
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
                          clock=lambda: self.clock[0], checkpoint_seconds=self.checkpoint_seconds)

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
    assert [(r["uuid"], r["key"]) for r in late] == [("g", {"team_id": "1", "event": "buy"})]


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


def _restart(pipe: Pipeline) -> None:
    """A crash of both steps: read again from the committed offsets, the aggregator from its changelog."""
    pipe.rekey_io.restart()
    pipe.aggregate_io.restart()
    pipe.aggregator = pipe.new_aggregator()


def test_a_state_larger_than_a_message_is_checkpointed_in_chunks_and_restored_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "CHUNK_BYTES", 1_000)
    pipe = Pipeline(spec(), [0.0])
    for round_ in range(3):  # three checkpoints: the chunks alternate between the two slots
        pipe.send(0, [processed(f"e{round_}-{i}", "buy", f"user-{round_}-{i:03d}", BASE + i) for i in range(100)])
        pipe.run()
    keys = [m.key or b"" for m in pipe.changelog.partitions[pipe.rekeyer.repartitioner.partition_of(("1", "buy"))]]
    assert {k.count(b":") for k in keys} == {0, 2}  # manifests and chunks
    assert len({k.split(b":")[1] for k in keys if b":" in k}) == 2
    _restart(pipe)
    pipe.send(0, [processed("close", "buy", "u1", BASE + 5 * MINUTE)])
    pipe.run()
    assert by_window(pipe.results())[("buy", BASE)] == {"events": 300, "users": 300, "revenue": 0.0}


def test_a_crash_while_chunks_are_written_restores_the_checkpoint_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "CHUNK_BYTES", 1_000)
    pipe = Pipeline(spec(), [0.0])
    pipe.send(0, [processed(f"a{i}", "buy", f"user-a-{i:03d}", BASE + i) for i in range(100)])
    pipe.run()
    pipe.send(0, [processed(f"b{i}", "buy", f"user-b-{i:03d}", BASE + i) for i in range(100)])
    partition = pipe.rekeyer.repartitioner.partition_of(("1", "buy"))
    changelog = pipe.changelog.partitions[partition]
    before = len(changelog)
    real_send = pipe.aggregate_io.send

    async def dies_before_the_manifest(messages: Sequence[Out]) -> list[int]:
        offsets = await real_send(messages)
        if any(m.topic == pipe.window.changelog("hw") and b":" in m.key for m in messages):
            raise ConnectionError("the worker died")
        return offsets

    pipe.aggregate_io.send = dies_before_the_manifest  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        pipe.run()
    assert len(changelog) > before
    assert b":" in (changelog[-1].key or b"")  # the newest message is a chunk
    pipe.aggregate_io.send = real_send  # type: ignore[method-assign]
    _restart(pipe)
    pipe.send(0, [processed("close", "buy", "u1", BASE + 5 * MINUTE)])
    pipe.run()
    assert by_window(pipe.results())[("buy", BASE)] == {"events": 200, "users": 200, "revenue": 0.0}


def test_state_and_offsets_are_written_once_a_checkpoint_is_due_not_on_every_fetch() -> None:
    clock = [0.0]
    pipe = Pipeline(spec(), clock, checkpoint_seconds=1.0)
    for i in range(5):
        pipe.send(0, [processed(f"e{i}", "buy", "u1", BASE + i)])
        pipe.run()
    assert sum(len(p) for p in pipe.changelog.partitions) == 0
    assert pipe.aggregate_io.committed == [0] * PARTITIONS
    clock[0] += 1.0
    pipe.run()
    assert sum(len(p) for p in pipe.changelog.partitions) == 1
    assert sum(pipe.aggregate_io.committed) == 5  # every repartition message read
    _restart(pipe)
    pipe.send(0, [processed("close", "buy", "u1", BASE + 5 * MINUTE)])
    pipe.run()
    assert by_window(pipe.results())[("buy", BASE)]["events"] == 5


def test_the_pipeline_tap_rekeys_a_batch_in_position_order_and_its_replay_counts_nothing_twice() -> None:
    pipe = Pipeline(spec(), [0.0])
    tap = WindowTap(pipe.window, "hw", PARTITIONS)
    events = [(Position("events_raw", i % 2, 10 + i // 10, i % 10), processed(f"e{i}", "buy", f"u{i}", BASE + i))
              for i in range(40)]
    batch = list(reversed(events))  # a stage may hand events back in another order than they were read

    async def deliver() -> None:
        for out in tap.messages(batch):
            pipe.repartition.append(out)
        await pipe.aggregator.step()

    asyncio.run(deliver())
    records = [r for p in pipe.repartition.partitions for m in p for r in orjson.loads(m.value)]
    for source in ("events_raw:0", "events_raw:1"):
        positions = [(r[5], r[6]) for r in records if r[4] == source]
        assert len(positions) == 20
        assert positions == sorted(positions)
    asyncio.run(deliver())  # the pipeline's batch again, after a crash before its commit
    pipe.send(0, [processed("close", "buy", "u1", BASE + 5 * MINUTE)])
    pipe.run()
    assert by_window(pipe.results())[("buy", BASE)] == {"events": 40, "users": 40, "revenue": 0.0}


def test_a_larger_state_is_checkpointed_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "CHECKPOINT_BYTES", 1_000)
    clock = [0.0]
    pipe = Pipeline(spec(), clock, checkpoint_seconds=1.0)
    changelog = pipe.changelog.partitions[pipe.rekeyer.repartitioner.partition_of(("1", "buy"))]

    def round_(n: int, seconds: float) -> int:
        clock[0] += seconds
        pipe.send(0, [processed(f"e{n}-{i}", "buy", f"user-{n}-{i:03d}", BASE + i) for i in range(100)])
        pipe.run()
        return len(changelog)

    assert round_(0, 1.0) == 1  # ~1.5 KB written: the next checkpoint waits ~1.5 s
    size = len(changelog[-1].value)
    assert size > 1_200
    assert round_(1, 1.0) == 1
    assert round_(2, size / 1_000) == 2
