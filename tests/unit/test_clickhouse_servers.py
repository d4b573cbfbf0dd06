"""What the ClickHouse sink does by server version, and the values it types for the native protocol and
legacy servers, without a server (a fake client at the I/O seam)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from headwater.runtime.settings import Settings
from headwater.stack.endpoints import resolve_endpoints
from schemas.events import ProcessedEvent
from schemas.serializer import encode_envelope
from sinks.base import SourceEnvelope
from sinks.clickhouse.client import INLINE_INSERT, QueryResult
from sinks.clickhouse.rows import EVENTS, event_row
from sinks.clickhouse.server import Server
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.values import converter
from sinks.errors import RetriableSinkError


@pytest.mark.parametrize(("version", "legacy"), [
    ("18.16.1", True), ("19.17.4.11", True), ("21.12.3", True), ("22.1.3.7", False), ("26.9.2.1", False),
    ("something else", True),
])
def test_servers_before_22_1_take_the_legacy_layout_and_no_avro(version: str, legacy: bool) -> None:
    server = Server(version)
    assert (server.legacy, server.reads_avro) == (legacy, not legacy)


@pytest.mark.parametrize(("type_", "value", "expected"), [
    ("DateTime('UTC')", "1700000000.123456", 1_700_000_000),
    ("DateTime", "1700000000.999999", 1_700_000_000),
    ("DateTime64(6, 'UTC')", "1700000000.123456", 1_700_000_000_123_456),
    ("DateTime64(3, 'UTC')", "1700000000.123456", 1_700_000_000_123),
    ("DateTime64(3)", "-1.999999", -1),  # before the epoch: rows writes floor seconds and a positive fraction
    ("DateTime64(3, 'UTC')", None, 0),  # not Nullable: the column's default, as current servers do
    ("DateTime('UTC')", None, 0),
    ("Nullable(DateTime64(3, 'UTC'))", None, None),
    ("Nullable(DateTime('UTC'))", "5.5", 5),
    ("Bool", True, 1),
    ("UInt8", False, 0),
    ("Int64", 7, 7),
    ("String", None, ""),
    ("LowCardinality(String)", "x", "x"),
    ("UUID", None, "00000000-0000-0000-0000-000000000000"),
    ("Enum8('full' = 0, 'propertyless' = 1)", "full", "full"),
    ("Enum8('full' = 0, 'propertyless' = 1)", "no such", "no such"),  # the driver or the server refuses it
])
def test_values_are_typed_for_their_column(type_: str, value: object, expected: object) -> None:
    assert converter(type_)(value) == expected


def _event() -> ProcessedEvent:
    return ProcessedEvent(
        uuid=str(uuid.uuid4()), event="$pageview", properties="{}", timestamp=1_700_000_000_123_456, team_id=1,
        distinct_id="d", elements_chain="", created_at=1_700_000_000_000_000, person_id=str(uuid.uuid4()),
        person_properties="{}", person_created_at=None, person_mode="full", group_0="", group_1="", group_2="",
        group_3="", group_4="", historical_migration=True,
    )


class FakeClickHouse:
    """The client seam: a server of a given version that takes every insert, or cannot be reached at first."""

    def __init__(self, version: str, unreachable_for: int = 0) -> None:
        self.version = version
        self.unreachable_for = unreachable_for
        self.rows: list[Sequence[object]] = []
        self.avro_inserts = 0

    async def server(self) -> Server:
        if self.unreachable_for:
            self.unreachable_for -= 1
            raise RetriableSinkError("connection refused")
        return Server(self.version)

    async def command(self, sql: str) -> None:
        return None

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.rows += rows

    async def insert_avro(self, table: str, columns: Sequence[str], select: Sequence[str], item_schema: str,
                          container: Sequence[bytes | memoryview]) -> None:
        self.avro_inserts += 1

    async def select(self, sql: str) -> QueryResult:
        return QueryResult([], [], [])

    async def execute(self, sql: str) -> QueryResult | None:
        return None

    async def aclose(self) -> None:
        return None


def _counted(name: str, metric: str) -> float:
    return REGISTRY.get_sample_value(metric, {"sink": name}) or 0.0


@pytest.mark.parametrize(("version", "avro"), [("18.16.1", False), ("26.9.2.1", True)])
async def test_a_legacy_server_gets_rows_without_trying_avro(version: str, avro: bool) -> None:
    client = FakeClickHouse(version)
    name = f"servers_{version}"
    sink = ClickHouseSink(name, client, "events", EVENTS)
    before = _counted(name, "headwater_sink_fallbacks_total")
    event = _event()
    value = encode_envelope("processed_envelope", [dict(event)])
    sink.write([SourceEnvelope(value, None, 1)])  # a count header: Avro where the server reads it
    result = await sink.flush()
    assert (result.written, result.rejected, result.unwritten) == (1, [], [])
    assert client.avro_inserts == int(avro)
    assert client.rows == ([] if avro else [event_row(event)])
    assert _counted(name, "headwater_sink_fallbacks_total") == before  # choosing rows is not a fallback


async def test_the_version_question_is_retried_while_the_server_cannot_be_reached(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinks.retry.BACKOFF_START", 0.001)
    client = FakeClickHouse("18.16.1", unreachable_for=2)
    sink = ClickHouseSink("servers_unreachable", client, "events", EVENTS)
    before = _counted(sink.name, "headwater_sink_retries_total")
    sink.write([SourceEnvelope(encode_envelope("processed_envelope", [dict(_event())]), None, 1)])
    assert (await sink.flush()).written == 1
    assert _counted(sink.name, "headwater_sink_retries_total") == before + 2


async def test_an_empty_flush_asks_nothing() -> None:
    client = FakeClickHouse("18.16.1", unreachable_for=1)
    sink = ClickHouseSink("servers_empty", client, "events", EVENTS)
    assert (await sink.flush()).written == 0
    assert client.unreachable_for == 1


@pytest.mark.parametrize(("sql", "inline"), [
    ("INSERT INTO t VALUES (1, 'x')", True),
    ("insert into t (a, s) format JSONEachRow {\"a\": 1}", True),
    ("INSERT INTO t VALUES ('select')", True),
    ("INSERT INTO t SELECT number, 'values' FROM numbers(2)", False),
    ("INSERT INTO t (a) SELECT 1 FORMAT Native", False),
    ("SELECT 'INSERT INTO t VALUES'", False),
])
def test_the_native_client_knows_an_insert_with_its_rows_in_the_sql(sql: str, inline: bool) -> None:
    """Such an INSERT would hang on the native protocol (the server waits for blocks): it is refused at once."""
    assert bool(INLINE_INSERT.match(sql)) is inline


def test_the_cluster_setting_reaches_the_endpoints_and_must_be_a_plain_name() -> None:
    given = {"kafka_bootstrap": "k:9092", "postgres_dsn": "postgresql://p/x", "redis_url": "redis://r",
             "clickhouse_url": "clickhouse://ch:9000/headwater"}
    endpoints = resolve_endpoints(Settings(**given, clickhouse_cluster="analytics"))  # type: ignore[arg-type]
    assert (endpoints.clickhouse, endpoints.clickhouse_cluster) == ("clickhouse://ch:9000/headwater", "analytics")
    assert resolve_endpoints(Settings(**given)).clickhouse_cluster is None  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="clickhouse_cluster"):
        Settings(clickhouse_cluster="my-cluster; DROP")
