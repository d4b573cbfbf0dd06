"""The gateway's write path without a broker: group commit, per-request acknowledgement, deadlines.

``FakeProducer`` stands in at the I/O seam (``KafkaProducer.produce`` and its delivery
callbacks); everything above it is the real ``Publisher`` and ``asgi`` code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from capture_gateway.bodies import BodyReader
from capture_gateway.deadlines import Deadlines
from capture_gateway.errors import PayloadTooLarge, RequestTimeout
from capture_gateway.producer import OutgoingMessage
from capture_gateway.publish import Publisher
from capture_gateway.routing import Routed
from capture_gateway.telemetry import LoopCounter, LoopHistogram
from headwater.errors import Unavailable
from headwater.runtime.topology import load_topology
from schemas.envelope import event_key
from schemas.events import RawEvent
from schemas.partitioner import partition_for
from schemas.serializer import AvroSerializer
from tests.support import DEFAULT_TOPOLOGY
from tests.support.waiting import wait_until

TOPOLOGY = load_topology(DEFAULT_TOPOLOGY)
ENVELOPES: AvroSerializer[dict[str, list[RawEvent]]] = AvroSerializer("raw_envelope")
PARTITIONS = 4


class FakeProducer:
    """Records what is produced; the test decides when and how Kafka answers."""

    timeout = 0.3

    def __init__(self, refuse_after: int | None = None) -> None:
        self.sent: list[tuple[OutgoingMessage, Callable[[str | None], None]]] = []
        self.refuse_after = refuse_after

    def cached_partitions(self, _topic: str) -> int:
        return PARTITIONS

    def partitions_stale(self, _topic: str) -> bool:
        return False

    async def partitions(self, _topic: str) -> int:
        return PARTITIONS

    def produce(self, message: OutgoingMessage, on_delivery: Callable[[str | None], None]) -> None:
        if self.refuse_after is not None and len(self.sent) >= self.refuse_after:
            raise Unavailable("the Kafka producer queue is full; retry shortly", "kafka_unavailable")
        self.sent.append((message, on_delivery))

    def answer(self, error: str | None = None, only: Callable[[OutgoingMessage], bool] = lambda _: True) -> None:
        for message, on_delivery in self.sent:
            if only(message):
                on_delivery(error)


def event(distinct_id: str, name: str = "$pageview", token: str = "phc_a") -> RawEvent:
    return RawEvent(uuid=f"u-{distinct_id}-{name}", event=name, distinct_id=distinct_id, token=token,
                    timestamp=1, now=2, sent_at=None, ip=None, properties="{}", set=None, set_once=None,
                    historical_migration=False, capture_warnings=[], skip_person_processing=False)


def publisher(producer: FakeProducer, sweep_interval: float = 0.25) -> Publisher:
    return Publisher(producer, TOPOLOGY.capture, TOPOLOGY.pipeline.dead_letter,  # type: ignore[arg-type]
                     sweep_interval)


async def settle() -> None:
    for _ in range(3):  # the flush runs one loop turn after the requests queued
        await asyncio.sleep(0)


async def test_requests_of_one_loop_turn_share_envelopes() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    requests = [asyncio.create_task(pub.publish(Routed(live=[event(f"user-{i}")]), "phc_a")) for i in range(12)]
    await settle()
    by_partition = {partition_for(event_key("phc_a", f"user-{i}"), PARTITIONS) for i in range(12)}
    assert len(producer.sent) == len(by_partition) < 12
    decoded = [ENVELOPES.decode(m.value)["events"] for m, _ in producer.sent]
    assert sorted(e["distinct_id"] for envelope in decoded for e in envelope) == sorted(f"user-{i}" for i in range(12))
    for (message, _), events in zip(producer.sent, decoded, strict=True):
        assert {partition_for(event_key("phc_a", e["distinct_id"]), PARTITIONS) for e in events} == {message.partition}
        headers = dict(message.headers)
        assert headers["token"] == b"phc_a"
        assert headers["count"] == str(len(events)).encode()
    assert not any(r.done() for r in requests)  # nobody is answered before Kafka acknowledged
    producer.answer()
    await asyncio.gather(*requests)


async def test_tokens_never_share_an_envelope() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    tasks = [asyncio.create_task(pub.publish(Routed(live=[event("same", token=t)]), t)) for t in ("phc_a", "phc_b")]
    await settle()
    assert sorted(dict(m.headers)["token"] for m, _ in producer.sent) == [b"phc_a", b"phc_b"]
    producer.answer()
    await asyncio.gather(*tasks)


async def test_a_failed_message_fails_only_the_requests_with_events_in_it() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    ids = [f"user-{i}" for i in range(40)]
    failing = partition_for(event_key("phc_a", ids[0]), PARTITIONS)
    tasks = {i: asyncio.create_task(pub.publish(Routed(live=[event(i)]), "phc_a")) for i in ids}
    await settle()
    producer.answer("Broker: Not enough in-sync replicas", only=lambda m: m.partition == failing)
    producer.answer(None, only=lambda m: m.partition != failing)
    for distinct_id, task in tasks.items():
        if partition_for(event_key("phc_a", distinct_id), PARTITIONS) == failing:
            with pytest.raises(Unavailable, match="in-sync"):
                await task
        else:
            await task


async def test_a_request_waits_for_every_message_holding_its_events() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    events = [event(f"user-{i}") for i in range(20)]
    task = asyncio.create_task(pub.publish(Routed(live=events), "phc_a"))
    await settle()
    assert len(producer.sent) > 1
    first = producer.sent[0][0]
    producer.answer(only=lambda m: m is first)
    await settle()
    assert not task.done()
    producer.answer(only=lambda m: m is not first)
    await task


async def test_a_full_producer_queue_fails_what_was_not_produced() -> None:
    producer = FakeProducer(refuse_after=1)
    pub = publisher(producer)
    tasks = [asyncio.create_task(pub.publish(Routed(live=[event(f"user-{i}")]), "phc_a")) for i in range(12)]
    await settle()
    assert len(producer.sent) == 1
    producer.answer()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    produced = {e["distinct_id"] for e in ENVELOPES.decode(producer.sent[0][0].value)["events"]}
    for i, result in enumerate(results):
        if f"user-{i}" in produced:
            assert result is None
        else:
            assert isinstance(result, Unavailable)
            assert "queue is full" in result.message


async def test_unanswered_messages_fail_their_requests_after_the_timeout() -> None:
    producer = FakeProducer()
    pub = publisher(producer, sweep_interval=0.05)  # sweep often: this test waits for a deadline
    try:
        with pytest.raises(Unavailable, match="did not acknowledge"):
            await asyncio.wait_for(pub.publish(Routed(live=[event("a")]), "phc_a"), timeout=5)
    finally:
        await pub.close()


async def test_overflow_and_dead_letters_go_to_their_topics() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    task = asyncio.create_task(pub.publish(Routed(overflow=[event("hot")], dead_letter=[event("bad")]), "phc_a"))
    await settle()
    topics = {m.topic: m for m, _ in producer.sent}
    assert set(topics) == {TOPOLOGY.capture.overflow_topic, TOPOLOGY.pipeline.dead_letter}
    assert topics[TOPOLOGY.capture.overflow_topic].key is None
    assert dict(topics[TOPOLOGY.pipeline.dead_letter].headers)["reason"] == b"event_restriction"
    producer.answer()
    await task


async def test_deadlines_expire_only_what_is_late() -> None:
    expired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(0.05, expired.append, interval=0.01)
    deadlines.add("late")
    deadlines.add("done")
    deadlines.discard("done")

    async def expired_some() -> bool:
        return bool(expired)

    await wait_until(expired_some, 5, "nothing expired", interval=0.01)  # "done" was due at the same time
    deadlines.add("fresh")
    deadlines.sweep()
    await deadlines.close()
    assert expired == ["late"]


async def test_body_reader_limits_and_deadline() -> None:
    reader = BodyReader(timeout=0.1)
    chunks: list[dict[str, object]] = [{"type": "http.request", "body": b"ab", "more_body": True},
                                       {"type": "http.request", "body": b"c"}]

    async def receive() -> dict[str, object]:
        return chunks.pop(0)

    assert await reader.read(receive, 10, "3") == b"abc"
    with pytest.raises(PayloadTooLarge):
        await reader.read(receive, 10, "11")

    async def stalls() -> dict[str, object]:
        await asyncio.sleep(10)
        raise AssertionError("the deadline should have ended the read")

    with pytest.raises(RequestTimeout):
        await reader.read(stalls, 10, None)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await reader.close()


def test_loop_metrics_export_as_prometheus() -> None:
    counter = LoopCounter("headwater_test_dropped", "Test.", "reason")
    counter.inc(2, "a")
    counter.inc(1, "a")
    histogram = LoopHistogram("headwater_test_bytes", "Test.", buckets=(10, 100))
    for value in (5, 50, 500, 10):
        histogram.observe(value)
    [sample] = counter.collect().samples
    assert (sample.name, sample.labels, sample.value) == ("headwater_test_dropped_total", {"reason": "a"}, 3.0)
    buckets = {s.labels["le"]: s.value for s in histogram.collect().samples if s.name.endswith("_bucket")}
    assert buckets == {"10": 2.0, "100": 3.0, "+Inf": 4.0}
