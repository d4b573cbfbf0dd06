"""The sink contract, run for every registered sink type against its real destination.

For each type in ``sinks.registry.sink_types()`` that writes to a service, a ``Contract`` below says how to give it a
destination of its own in the local stack, a record, a record the destination refuses, and
how to count what landed. Then every sink must:

- leave one row for a record written twice (redelivery after a crash is normal; for `kafka`, one
  copy once the topic is deduplicated by key, see ``KafkaContract``);
- reject only the record the destination refuses, writing its neighbours;
- retry a destination that cannot be reached, counting the retries, and never let the batch's
  checkpoint acknowledge its messages meanwhile;
- refuse unknown config keys.

A new sink type without a ``Contract`` fails ``test_every_sink_type_has_a_contract``. A type may
have more than one (``type:variant`` keys): ``clickhouse`` runs against the local stack's chDB,
and again against a real ClickHouse 18.16 server (Debian's package, a process of the session's
own: the ``clickhouse_server`` fixture) over the native protocol and over HTTP, in the legacy
table layout that server takes (``sinks.clickhouse.server``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client import REGISTRY
from pydantic import ValidationError

from headwater.runtime.settings import Endpoints
from schemas.events import ProcessedEvent
from schemas.serializer import decode_envelope, encode_envelope
from sinks.agent import SinkAgent
from sinks.base import Record, SourceEnvelope
from sinks.clickhouse.client import connect as clickhouse_connect
from sinks.registry import sink_types
from streams.checkpoint import Checkpoint
from tests.support.clickhouse import select
from tests.support.kafka import delete_topics, messages
from tests.support.waiting import wait_until


class Contract(Protocol):
    """What the suite needs to know about one sink type."""

    async def destination(self, endpoints: Endpoints) -> dict[str, Any]:
        """A fresh destination in the local stack; returns the sink's ``config`` for it."""
        ...

    def record(self) -> Record: ...

    def refused(self) -> Record:
        """A record the destination refuses for good."""
        ...

    async def count(self, endpoints: Endpoints, config: dict[str, Any], record: Record) -> int:
        """How many rows ``record`` left (after deduplication)."""
        ...

    def unreachable(self, endpoints: Endpoints) -> Endpoints:
        """Endpoints under which the destination cannot be reached."""
        ...

    async def remove(self, endpoints: Endpoints, config: dict[str, Any]) -> None:
        """Delete the destination ``destination`` made."""
        ...


def processed_event() -> ProcessedEvent:
    """A processed event of its own uuid."""
    return ProcessedEvent(
        uuid=str(uuid.uuid4()), event="$pageview", properties='{"$current_url": "/"}',
        timestamp=1_700_000_000_000_000, team_id=1, distinct_id="user-1", elements_chain="",
        created_at=1_700_000_000_000_000,
        person_id=str(uuid.uuid4()), person_properties="{}", person_created_at=None, person_mode="full",
        group_0="", group_1="", group_2="", group_3="", group_4="", historical_migration=False,
    )


class ClickHouseContract:
    async def destination(self, endpoints: Endpoints) -> dict[str, Any]:
        table = f"contract_{uuid.uuid4().hex[:12]}"
        client = clickhouse_connect(endpoints.clickhouse)
        try:
            await client.command(f"CREATE TABLE {table} AS events")
        finally:
            await client.aclose()
        return {"records": "events", "table": table}

    def record(self) -> Record:
        return processed_event()

    def refused(self) -> Record:
        return {**self.record(), "person_mode": "not a person mode"}  # an Enum8 column refuses it

    async def count(self, endpoints: Endpoints, config: dict[str, Any], record: Record) -> int:
        result = await select(endpoints, f"SELECT count() FROM {config['table']} FINAL WHERE uuid = '{record['uuid']}'")
        return int(result.rows[0][0])

    def unreachable(self, endpoints: Endpoints) -> Endpoints:
        native = endpoints.clickhouse.startswith("clickhouse://")
        return dataclasses.replace(endpoints, clickhouse="clickhouse://127.0.0.1:9/default" if native
                                   else "http://127.0.0.1:9")

    async def remove(self, endpoints: Endpoints, config: dict[str, Any]) -> None:
        client = clickhouse_connect(endpoints.clickhouse)
        try:
            await client.command(f"DROP TABLE IF EXISTS {config['table']}")
        finally:
            await client.aclose()


class KafkaContract:
    """A fresh topic of its own (``max.message.bytes`` 64 KiB, so a large record is refused), Avro values.

    ``count`` is what a compacted topic keeps, or a consumer that deduplicates by key sees: the
    topic read whole, the last value per key kept, then the copies of the record among those.
    The sink publishes at least once, so the topic itself may hold a record more than once
    until it is compacted; the keys (an event's uuid) and values of the copies are the same.
    """

    PARTITIONS = 2

    async def destination(self, endpoints: Endpoints) -> dict[str, Any]:
        topic = f"contract_{uuid.uuid4().hex[:12]}"
        admin = AdminClient({"bootstrap.servers": endpoints.kafka, "log_level": 0})
        created = admin.create_topics([NewTopic(topic, num_partitions=self.PARTITIONS, replication_factor=1,
                                                config={"max.message.bytes": str(64 * 1024)})])
        for future in created.values():
            await asyncio.wrap_future(future)
        return {"topic": topic, "format": "avro", "delivery_timeout_seconds": 2}

    def record(self) -> Record:
        return processed_event()

    def refused(self) -> Record:
        # random text stays larger than the topic's limit once lz4-compressed
        blob = base64.b64encode(os.urandom(150_000)).decode()
        return {**self.record(), "properties": orjson.dumps({"blob": blob}).decode()}

    async def count(self, endpoints: Endpoints, config: dict[str, Any], record: Record) -> int:
        def latest() -> dict[bytes | None, bytes]:
            return {m.key(): m.value() or b"" for m in messages(endpoints.kafka, config["topic"], self.PARTITIONS)}

        kept = await asyncio.to_thread(latest)
        return sum(1 for value in kept.values() for r in decode_envelope(value)[1] if r["uuid"] == record["uuid"])

    def unreachable(self, endpoints: Endpoints) -> Endpoints:
        return dataclasses.replace(endpoints, kafka="127.0.0.1:9")

    async def remove(self, endpoints: Endpoints, config: dict[str, Any]) -> None:
        await asyncio.to_thread(delete_topics, endpoints.kafka, [config["topic"]])


CONTRACTS: dict[str, Contract] = {
    "clickhouse": ClickHouseContract(), "clickhouse:native-18.16": ClickHouseContract(),
    "clickhouse:http-18.16": ClickHouseContract(), "kafka": KafkaContract(),
}
"""By ``type`` or ``type:variant``; every variant runs the whole suite."""
ON_SERVER = {"clickhouse:native-18.16": "native_url", "clickhouse:http-18.16": "http_url"}
"""The contracts run against the ``clickhouse_server`` fixture (ClickHouse 18.16) rather than the local stack,
and which of its URLs each uses."""
NO_SERVICE = {"files": "tests/unit/test_sink_compliance.py", "webhook": "tests/unit/test_sink_compliance.py"}
"""Sink types whose destination needs no service (a directory, a local HTTP receiver): their contract
runs in the unit suite, which also checks a redelivery that ends elsewhere and a refused record; they
cannot be made unreachable by endpoints, so the cases below do not apply to them."""


def _type(contract: str) -> str:
    return contract.split(":", maxsplit=1)[0]


def test_every_sink_type_has_a_contract() -> None:
    assert sorted(sink_types()) == sorted({*map(_type, CONTRACTS), *NO_SERVICE})
    assert set(ON_SERVER) <= set(CONTRACTS)


def test_the_sinks_checked_in_the_unit_suite_are_there() -> None:
    from tests.unit import test_sink_compliance

    assert {name.split("-")[0] for name in test_sink_compliance.DESTINATIONS} == set(NO_SERVICE)


@dataclass
class Built:
    contract: Contract
    endpoints: Endpoints
    config: dict[str, Any]
    type: str


@pytest.fixture(params=sorted(CONTRACTS))
def contract_endpoints(request: pytest.FixtureRequest) -> tuple[str, Endpoints]:
    """The contract's key and where its destination is (set up here, outside the event loop: the
    session fixtures run ``asyncio.run``)."""
    if request.param in ON_SERVER:  # a ClickHouse server alone: no local stack needed
        server = request.getfixturevalue("clickhouse_server")
        return request.param, Endpoints(kafka="", postgres="", redis="",
                                        clickhouse=getattr(server, ON_SERVER[request.param]))
    return request.param, request.getfixturevalue("stack")


@pytest.fixture
async def built(contract_endpoints: tuple[str, Endpoints]) -> AsyncIterator[Built]:
    key, endpoints = contract_endpoints
    contract = CONTRACTS[key]
    config = await contract.destination(endpoints)
    yield Built(contract, endpoints, config, _type(key))
    await contract.remove(endpoints, config)


def _envelope(*records: Record, counted: bool = True) -> SourceEnvelope:
    """``records`` as one message of the sink's source topic, with its ``count`` header or without."""
    value = encode_envelope("processed_envelope", [dict(r) for r in records])
    return SourceEnvelope(value, None, len(records) if counted else None)


@pytest.mark.parametrize("counted", [True, False], ids=["count_header", "no_count_header"])
async def test_a_record_written_twice_leaves_one_row(built: Built, counted: bool) -> None:
    sink = sink_types()[built.type].build("contract", built.config, built.endpoints)
    record = built.contract.record()
    try:
        for _ in range(2):
            sink.write([_envelope(record, counted=counted)])
            result = await sink.flush()
            assert (result.written, result.rejected) == (1, [])
        sink.write([_envelope(record, record, counted=counted)])
        assert (await sink.flush()).written == 2
    finally:
        await sink.close()
    assert await built.contract.count(built.endpoints, built.config, record) == 1


async def test_a_refused_record_is_rejected_alone(built: Built) -> None:
    sink = sink_types()[built.type].build("contract", built.config, built.endpoints)
    good, bad, other = built.contract.record(), built.contract.refused(), built.contract.record()
    try:
        sink.write([_envelope(good, bad), _envelope(other)])
        result = await sink.flush()
    finally:
        await sink.close()
    assert result.written == 2
    assert [r.record["uuid"] for r in result.rejected] == [bad["uuid"]]
    assert result.rejected[0].error
    for record in (good, other):
        assert await built.contract.count(built.endpoints, built.config, record) == 1


async def test_an_envelope_that_cannot_be_read_is_returned_undecodable(built: Built) -> None:
    sink = sink_types()[built.type].build("contract", built.config, built.endpoints)
    good = built.contract.record()
    whole = _envelope(built.contract.record())
    # framed like an envelope of one record (header, block count, terminator), its record cut short
    broken = SourceEnvelope(whole.value[:12] + whole.value[-1:], None, 1)
    try:
        sink.write([_envelope(good), broken])
        result = await sink.flush()
    finally:
        await sink.close()
    assert (result.written, result.rejected) == (1, [])
    assert [u.envelope for u in result.unwritten] == [broken]
    assert await built.contract.count(built.endpoints, built.config, good) == 1


class _Message:
    """A Kafka message as the checkpoint sees it: something to ack."""

    def __init__(self) -> None:
        self.acked = False

    def ack(self) -> None:
        self.acked = True


class _Topic:
    async def send(self, **_: Any) -> asyncio.Future[None]:
        raise AssertionError("nothing is dead-lettered when the destination is only unreachable")


async def test_an_unreachable_destination_is_retried_and_nothing_is_acknowledged(built: Built) -> None:
    sink = sink_types()[built.type].build("contract_down", built.config, built.contract.unreachable(built.endpoints))
    agent = SinkAgent(sink, "events_processed")

    def retries() -> float:
        return REGISTRY.get_sample_value("headwater_sink_retries_total", {"sink": "contract_down"}) or 0.0

    before = retries()
    message = _Message()
    checkpoint = Checkpoint([message], _Topic())  # type: ignore[list-item, arg-type]
    value = encode_envelope("processed_envelope", [dict(built.contract.record())])
    await agent.handle([SourceEnvelope(value, None, 1)], checkpoint)
    commit = asyncio.ensure_future(checkpoint.commit())

    async def retried() -> bool:  # async, so that the commit runs on this loop meanwhile
        return retries() >= before + 2

    try:
        await wait_until(retried, 30, "the sink did not retry", interval=0.05)
        assert not commit.done(), "the flush gave up on a destination that is only unreachable"
        assert not message.acked
    finally:
        commit.cancel()
        await asyncio.gather(commit, return_exceptions=True)
        await agent.close()
    assert not message.acked


@pytest.mark.parametrize("type_", sorted({*map(_type, CONTRACTS), *NO_SERVICE}))
def test_unknown_config_keys_fail_validation(type_: str) -> None:
    with pytest.raises(ValidationError, match="no_such_key"):
        sink_types()[type_].config.model_validate({"no_such_key": 1})
