"""The kafka sink's logic at its I/O seam: a fake producer in place of ``confluent_kafka.Producer``.

What a record becomes (filter, key, JSON or Avro value), one wait for the delivery reports per
flush, resending only what was not acknowledged, refused records and undecodable envelopes;
and the topology side: the destination must be declared (so ``headwater migrate`` creates it)
and the graph draws it. The real broker is ``tests/integration/test_sink_contract.py``'s and
``tests/integration/test_kafka_sink.py``'s.
"""

from __future__ import annotations

import asyncio
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from fastavro import schemaless_reader
from prometheus_client import REGISTRY

from headwater.runtime.topology import Topology
from headwater.runtime.topology.graph import describe, dot, mermaid
from schemas import registry
from schemas.serializer import decode_envelope, encode_envelope
from sinks.base import FlushResult, SourceEnvelope
from sinks.errors import PermanentSinkError
from sinks.kafka.client import Headers, Outcome, classify
from sinks.kafka.config import KafkaConfig
from sinks.kafka.messages import identity
from sinks.kafka.sink import KafkaSink
from sinks.registry import published_topics, sink_types
from streams.components import component_problems
from tests.support import DEFAULT_TOPOLOGY
from tests.support.records import processed

AT = 1_733_059_800 * 1_000_000

Plan = Callable[["Sent", list["Sent"]], KafkaError | None]


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers | None


@dataclass
class FakeProducer:
    """``confluent_kafka.Producer``'s calls the sink makes: queued messages are reported at ``flush``
    (or ``poll``), each with what ``report`` says (None: acknowledged)."""

    topics: dict[str, Any] = field(default_factory=lambda: {"exports": SimpleNamespace(error=None, partitions=[0, 1])})
    report: Plan = lambda sent, batch: None
    refuse_at_once: Callable[[Sent], KafkaError | None] = lambda sent: None
    reachable: bool = True
    queued: list[tuple[Sent, Any]] = field(default_factory=list)
    produced: list[Sent] = field(default_factory=list)
    acked: list[Sent] = field(default_factory=list)
    waits: int = 0
    purged: bool = False

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, *,
                headers: Headers | None = None, on_delivery: Any = None) -> None:
        sent = Sent(topic, key, value or b"", headers)
        if (error := self.refuse_at_once(sent)) is not None:
            raise KafkaException(error)
        self.produced.append(sent)
        self.queued.append((sent, on_delivery))

    def flush(self, timeout: float) -> int:
        self.waits += 1
        batch, self.queued = self.queued, []
        for sent, callback in batch:
            error = self.report(sent, [s for s, _ in batch])
            if error is None:
                self.acked.append(sent)
            callback(error, None)
        return 0

    def poll(self, timeout: float) -> int:
        return self.flush(timeout)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if not self.reachable:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Local: Broker transport failure"))
        known = self.topics.get(topic or "")
        error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART) if known is None else None
        return SimpleNamespace(topics={topic: known or SimpleNamespace(error=error, partitions=[])})

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True
        self.queued = []


def kafka_sink(producer: FakeProducer, name: str = "export", **config: Any) -> KafkaSink:
    return KafkaSink(name, KafkaConfig(topic="exports", **config), "kafka:9092", lambda: producer)


def envelope(records: list[dict[str, Any]], subject: str = "processed_envelope") -> SourceEnvelope:
    return SourceEnvelope(encode_envelope(subject, records), None, len(records))


def flush(sink: KafkaSink, *envelopes: SourceEnvelope) -> FlushResult:
    sink.write(list(envelopes))
    return asyncio.run(sink.flush())


def events(n: int, event: str = "buy") -> list[dict[str, Any]]:
    return [processed(f"uuid-{event}-{i}", event, f"user-{i % 3}", AT + i, float(i)) for i in range(n)]


def window_result(start: int = AT) -> dict[str, Any]:
    return {"window": "per_minute", "key": '{"team_id":"1","event":"buy"}', "start": start, "end": start + 60_000_000,
            "values": '{"events":3}', "skipped": 0, "emitted_at": start + 90_000_000}


# -- what a record becomes ----------------------------------------------------------------------


def test_only_the_records_the_filter_takes_are_published() -> None:
    producer = FakeProducer()
    records = [*events(4, "buy"), *events(3, "view"),
               processed("pro", "buy", "u", AT, plan="pro"), processed("free", "buy", "u", AT, plan="free")]
    result = flush(kafka_sink(producer, filter={"events": ["buy"], "properties": [{"key": "plan", "op": "eq",
                                                                                       "value": "pro"}]}),
                   envelope(records))
    assert (result.written, result.rejected, result.unwritten) == (1, [], [])
    assert [s.key for s in producer.acked] == [b"pro"]


def test_a_batch_is_queued_whole_and_waited_for_once() -> None:
    producer = FakeProducer()
    result = flush(kafka_sink(producer), envelope(events(500)), envelope(events(500, "view")))
    assert result.written == 1000
    assert len(producer.produced) == 1000
    assert producer.waits == 1  # no round trip per record: one wait for every delivery report
    assert {s.topic for s in producer.produced} == {"exports"}


def test_events_are_keyed_by_uuid_and_window_results_by_window_key_and_start() -> None:
    producer = FakeProducer()
    flush(kafka_sink(producer), envelope(events(2)))
    flush(kafka_sink(producer), envelope([window_result()], "window_results"))
    assert [s.key for s in producer.acked] == [b"uuid-buy-0", b"uuid-buy-1", f"per_minute:1|buy:{AT}".encode()]


def test_the_same_record_always_gets_the_same_key_and_value() -> None:
    for fmt in ("json", "avro"):
        producer = FakeProducer()
        flush(kafka_sink(producer, format=fmt), envelope(events(3)))
        flush(kafka_sink(producer, format=fmt), envelope(events(3)))  # redelivered after a crash
        first, again = producer.acked[:3], producer.acked[3:]
        assert [(s.key, s.value) for s in first] == [(s.key, s.value) for s in again]


def test_records_without_an_identity_are_keyed_by_their_content() -> None:
    warning = {"team_id": 1, "type": "t", "source": "s", "event_uuid": "", "details": "{}", "timestamp": AT}
    assert identity(warning) == identity(dict(reversed(warning.items())))
    assert identity(warning) != identity({**warning, "details": '{"x":1}'})


def test_the_key_can_be_the_distinct_id_or_nothing() -> None:
    by_person, unkeyed = FakeProducer(), FakeProducer()
    flush(kafka_sink(by_person, key="distinct_id"), envelope(events(2)))
    flush(kafka_sink(unkeyed, key="none"), envelope(events(2)))
    assert [s.key for s in by_person.acked] == [b"user-0", b"user-1"]
    assert [s.key for s in unkeyed.acked] == [None, None]


def test_json_values_are_the_records_as_they_travel() -> None:
    producer = FakeProducer()
    records = [*events(2), window_result()]
    flush(kafka_sink(producer), envelope(records[:2]), envelope(records[2:], "window_results"))
    assert [orjson.loads(s.value) for s in producer.acked] == records
    assert all(s.headers is None for s in producer.acked)


@pytest.mark.parametrize(("subject", "records"), [("processed_envelope", events(2)),
                                                  ("window_results", [window_result()])])
def test_avro_values_are_one_record_envelopes_a_consumer_can_decode(subject: str,
                                                                    records: list[dict[str, Any]]) -> None:
    producer = FakeProducer()
    flush(kafka_sink(producer, format="avro"), envelope(records, subject))
    for sent, record in zip(producer.acked, records, strict=True):
        assert sent.headers == [("count", b"1")]
        assert decode_envelope(sent.value) == (subject, [record])
        # as any consumer does it: the Confluent framing names a schema in schemas/avro/registry.json
        magic, schema_id = struct.unpack_from(">bI", sent.value)
        assert (magic, registry.by_id(schema_id).subject) == (0, subject)
        body = io.BytesIO(sent.value[5:])
        decoded = schemaless_reader(body, registry.by_id(schema_id).parsed(), None)
        assert next(iter(decoded.values())) == [record]  # type: ignore[union-attr]
        # and another Headwater sink reads the topic as it reads any envelope topic
        assert SourceEnvelope(sent.value, sent.key, 1).encoded() is not None


# -- delivery -------------------------------------------------------------------------------------


def retries(name: str) -> float:
    return REGISTRY.get_sample_value("headwater_sink_retries_total", {"sink": name}) or 0.0


def test_messages_not_acknowledged_are_sent_again_and_only_those(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinks.retry.BACKOFF_START", 0.001)
    timeouts = {b"uuid-buy-1": 2, b"uuid-buy-3": 1}

    def report(sent: Sent, _: list[Sent]) -> KafkaError | None:
        if timeouts.get(sent.key or b"", 0) > 0:
            timeouts[sent.key or b""] -= 1
            return KafkaError(KafkaError._MSG_TIMED_OUT, "Local: Message timed out", retriable=True)
        return None

    producer = FakeProducer(report=report)
    before = retries("resend")
    result = flush(kafka_sink(producer, "resend"), envelope(events(5)))
    assert (result.written, result.rejected) == (5, [])
    assert sorted(s.key or b"" for s in producer.acked) == [f"uuid-buy-{i}".encode() for i in range(5)]
    assert [s.key for s in producer.produced[5:]] == [b"uuid-buy-1", b"uuid-buy-3", b"uuid-buy-1"]
    assert retries("resend") == before + 2


def test_a_record_the_client_refuses_at_once_is_rejected_alone() -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
    producer = FakeProducer(refuse_at_once=lambda sent: too_large if sent.key == b"uuid-buy-2" else None)
    result = flush(kafka_sink(producer), envelope(events(4)))
    assert result.written == 3
    assert [r.record["uuid"] for r in result.rejected] == ["uuid-buy-2"]
    assert "too large" in result.rejected[0].error
    assert len(producer.acked) == 3


def test_a_record_the_broker_refuses_with_its_neighbours_is_sent_alone_and_the_neighbours_go() -> None:
    """A broker refuses a whole client batch for one message too large: only that one is rejected."""

    def report(sent: Sent, batch: list[Sent]) -> KafkaError | None:
        if any(s.key == b"uuid-buy-1" for s in batch):
            return KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
        return None

    producer = FakeProducer(report=report)
    result = flush(kafka_sink(producer), envelope(events(3)))
    assert result.written == 2
    assert [r.record["uuid"] for r in result.rejected] == ["uuid-buy-1"]
    assert sorted(s.key or b"" for s in producer.acked) == [b"uuid-buy-0", b"uuid-buy-2"]


def test_an_undecodable_envelope_is_returned_and_the_rest_published() -> None:
    producer = FakeProducer()
    garbage = SourceEnvelope(b"\x00not avro", None, 1)
    result = flush(kafka_sink(producer), envelope(events(2)), garbage)
    assert result.written == 2
    assert [u.envelope for u in result.unwritten] == [garbage]
    assert result.unwritten[0].reason == "undecodable"


@pytest.mark.parametrize(("code", "advice"), [(KafkaError.UNKNOWN_TOPIC_OR_PART, "headwater migrate"),
                                              (KafkaError.TOPIC_AUTHORIZATION_FAILED, "grant")])
def test_a_topic_that_cannot_be_written_stops_the_flush_saying_what_to_do(code: int, advice: str) -> None:
    producer = FakeProducer(report=lambda sent, batch: KafkaError(code))
    with pytest.raises(PermanentSinkError, match=advice):
        flush(kafka_sink(producer), envelope(events(2)))


def test_a_fatal_producer_error_starts_a_new_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinks.retry.BACKOFF_START", 0.001)
    fatal = [KafkaError(KafkaError._FATAL, "Local: Fatal error", fatal=True)]
    made: list[FakeProducer] = []

    def connect() -> FakeProducer:
        made.append(FakeProducer(report=lambda sent, batch: fatal.pop() if fatal else None))
        return made[-1]

    sink = KafkaSink("fatal", KafkaConfig(topic="exports"), "kafka:9092", connect)
    assert flush(sink, envelope(events(1))).written == 1
    assert len(made) == 2
    assert len(made[1].acked) == 1


def test_nothing_to_publish_sends_nothing() -> None:
    producer = FakeProducer()
    assert flush(kafka_sink(producer, filter={"events": ["nothing"]}), envelope(events(3))).written == 0
    assert producer.waits == 0


def test_errors_are_classified_by_what_they_mean_for_the_message() -> None:
    assert classify(KafkaError(KafkaError.INVALID_RECORD)) is Outcome.REFUSED
    assert classify(KafkaError(KafkaError._UNKNOWN_TOPIC)) is Outcome.CONFIG
    assert classify(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS)) is Outcome.TRANSIENT
    assert classify(KafkaError(KafkaError._TRANSPORT)) is Outcome.TRANSIENT


# -- start, healthcheck, close ----------------------------------------------------------------------


def test_start_checks_the_topic_exists_and_names_migrate() -> None:
    producer = FakeProducer(topics={})
    with pytest.raises(PermanentSinkError, match=r"`headwater migrate`"):
        asyncio.run(kafka_sink(producer).start())
    health = asyncio.run(kafka_sink(producer).healthcheck())
    assert not health.ok
    assert "does not exist" in health.detail


def test_start_leaves_an_unreachable_cluster_to_the_flush() -> None:
    producer = FakeProducer(reachable=False)
    asyncio.run(kafka_sink(producer).start())
    assert not asyncio.run(kafka_sink(producer).healthcheck()).ok


def test_healthcheck_is_a_metadata_request() -> None:
    health = asyncio.run(kafka_sink(FakeProducer()).healthcheck())
    assert health.ok
    assert "2 partitions" in health.detail


def test_another_cluster_names_itself_in_the_error() -> None:
    producer = FakeProducer(topics={})
    sink = KafkaSink("export", KafkaConfig(topic="exports", bootstrap="other:9092"), "other:9092", lambda: producer,
                     own_cluster=False)
    with pytest.raises(PermanentSinkError, match="create it on that cluster"):
        asyncio.run(sink.start())


def test_close_drops_what_is_still_queued() -> None:
    producer = FakeProducer()
    sink = kafka_sink(producer)
    asyncio.run(sink.healthcheck())
    producer.queued.append((Sent("exports", None, b"", None), lambda *_: None))
    asyncio.run(sink.close())
    assert producer.purged


# -- the topology ---------------------------------------------------------------------------------


def topology(sink_config: dict[str, Any], *, declare: str | None = "exports", source: str = "events_processed",
             ) -> Topology:
    from headwater.runtime.topology import load_topology

    doc = load_topology(DEFAULT_TOPOLOGY).model_dump(mode="json")
    if declare:
        doc["topics"][declare] = {"partitions": 2, "compacted": True}
    doc["sinks"].append({"name": "export", "type": "kafka", "source": source, "config": sink_config})
    return Topology.model_validate(doc)


def test_the_destination_must_be_declared_so_migrate_creates_it() -> None:
    declared = topology({"topic": "exports"})
    assert component_problems(declared) == []
    assert "exports" in declared.kafka_topics()  # what `headwater migrate` creates
    problems = component_problems(topology({"topic": "exports"}, declare=None))
    assert [(loc, "headwater migrate" in message) for loc, message in problems] == \
        [(("sinks", 7, "config", "topic"), True)]


def test_a_destination_on_another_cluster_need_not_be_declared() -> None:
    assert component_problems(topology({"topic": "elsewhere", "bootstrap": "other:9092"}, declare=None)) == []


@pytest.mark.parametrize(("destination", "source", "says"), [("exports", "exports", "cycle"),
                                                             ("events_raw", "events_processed", "of its own")])
def test_the_destination_is_a_topic_of_its_own(destination: str, source: str, says: str) -> None:
    problems = component_problems(topology({"topic": destination}, source=source))
    assert [says in message for _, message in problems] == [True]


def test_the_graph_draws_the_sinks_destination() -> None:
    declared = topology({"topic": "exports"})
    published = {s.name: published_topics(s.type, s.config) for s in declared.sinks}
    assert published["export"] == ["exports"]
    assert published["clickhouse"] == []
    assert "n_k_export --> n_t_exports" in mermaid(declared, published)
    assert '"sink:export" -> "exports";' in dot(declared, published)
    assert "--> topic: exports" in describe(declared, published)


def test_the_config_is_registered_and_strict() -> None:
    kind = sink_types()["kafka"]
    assert kind.config is KafkaConfig
    assert all(f.description for f in KafkaConfig.model_fields.values())
    with pytest.raises(ValueError, match="format"):
        KafkaConfig(topic="t", format="xml")
