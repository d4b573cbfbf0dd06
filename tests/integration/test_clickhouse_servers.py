"""``migrate``, ``query`` and the sink against a real ClickHouse server (18.16, Debian's package), over the
native protocol (``clickhouse://``) and HTTP (``http://``). The sink compliance suite runs there too
(``test_sink_contract``: ``clickhouse:native-18.16``, ``clickhouse:http-18.16``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from headwater.migrate import migrate_clickhouse
from schemas.clickhouse import TABLES, Layout, statements
from schemas.events import ProcessedEvent
from schemas.serializer import encode_envelope
from sinks.base import SourceEnvelope
from sinks.clickhouse.client import connect
from sinks.clickhouse.rows import EVENTS, ROW_FORMATS
from sinks.clickhouse.sink import ClickHouseSink
from sinks.errors import PermanentSinkError
from tests.support import ROOT
from tests.support.clickhouse_server import CLUSTER, ClickHouseServer

TRANSPORTS = ["native_url", "http_url"]


def _url(server: ClickHouseServer, transport: str, database: str = "default") -> str:
    return str(getattr(server, transport)).rsplit("/", 1)[0] + f"/{database}"


async def _fresh_database(server: ClickHouseServer) -> str:
    database = f"hw_{uuid.uuid4().hex[:10]}"
    client = connect(server.native_url)
    try:
        await client.command(f"CREATE DATABASE {database}")
    finally:
        await client.aclose()
    return database


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_migrate_makes_the_legacy_layout_and_can_run_again(clickhouse_server: ClickHouseServer,
                                                               transport: str) -> None:
    database = await _fresh_database(clickhouse_server)
    url = _url(clickhouse_server, transport, database)
    said: list[str] = []
    for _ in range(2):
        await migrate_clickhouse(url, said.append)
    assert "server 18.16" in said[-1]
    assert "legacy types" in said[-1]
    client = connect(url)
    try:
        server = await client.server()
        tables = await client.select(f"SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name")
        columns = await client.select(f"SELECT name, type FROM system.columns WHERE database = '{database}' "
                                      "AND table = 'events'")
    finally:
        await client.aclose()
    assert server.version.startswith("18.16.")
    assert [r[0] for r in tables.rows] == sorted(t.name for t in TABLES)
    types = {r[0]: r[1] for r in columns.rows}
    assert types["timestamp"] == "DateTime('UTC')"
    assert types["historical_migration"] == "UInt8"


def _record(**overrides: Any) -> ProcessedEvent:
    base = ProcessedEvent(
        uuid=str(uuid.uuid4()), event="$pageview", properties='{"$current_url": "/", "ü": "✓"}',
        timestamp=1_700_000_000_123_456, team_id=7, distinct_id="user-ü", elements_chain="a:b",
        created_at=1_700_000_001_654_321, person_id=str(uuid.uuid4()), person_properties='{"plan": "pro"}',
        person_created_at=None, person_mode="propertyless", group_0="acme", group_1="", group_2="g2",
        group_3="", group_4="g4", historical_migration=True,
    )
    return ProcessedEvent(**{**base, **overrides})  # type: ignore[typeddict-item]


async def test_native_and_http_write_the_same_values(clickhouse_server: ClickHouseServer) -> None:
    """The two transports type values their own way (driver blocks, JSONEachRow): the rows must not differ."""
    records = [_record(), _record(distinct_id="user-2", person_created_at=1_600_000_000_500_000,
                                  historical_migration=False, person_mode="full")]
    value = encode_envelope("processed_envelope", [dict(r) for r in records])
    tables = {transport: f"servers_{transport[:4]}_{uuid.uuid4().hex[:8]}" for transport in TRANSPORTS}
    client = connect(clickhouse_server.native_url)
    try:
        for transport, table in tables.items():
            await client.command(f"CREATE TABLE {table} AS events")
            sink = ClickHouseSink(f"servers_{transport}", connect(getattr(clickhouse_server, transport)), table,
                                  EVENTS)
            sink.write([SourceEnvelope(value, None, len(records))])
            result = await sink.flush()
            await sink.close()
            assert (result.written, result.rejected, result.unwritten) == (2, [], [])
        columns = ", ".join(f"toString(`{c}`)" for c in EVENTS.columns if c != "uuid")
        rows = {transport: (await client.select(f"SELECT {columns} FROM {table} ORDER BY distinct_id")).rows
                for transport, table in tables.items()}
    finally:
        for table in tables.values():
            await client.command(f"DROP TABLE IF EXISTS {table}")
        await client.aclose()
    assert rows["native_url"] == rows["http_url"]
    by_distinct_id = {row[4]: row for row in rows["native_url"]}
    first, second = by_distinct_id["user-ü"], by_distinct_id["user-2"]
    assert first[2] == "2023-11-14 22:13:20"  # whole seconds: 18.16 has no DateTime64
    assert first[9] == "0000-00-00 00:00:00"  # person_created_at missing: the column's default
    assert second[9] == "2020-09-13 12:26:40"
    assert (first[10], first[16], second[10], second[16]) == ("propertyless", "1", "full", "0")
    assert first[1] == '{"$current_url": "/", "ü": "✓"}'  # text arrives as it was sent


_T = 1_700_000_000_123_456
RECORDS: dict[str, dict[str, Any]] = {
    "ingestion_warnings": {"team_id": 1, "source": "validate", "type": "invalid_event", "event_uuid": str(uuid.uuid4()),
                           "details": "{}", "timestamp": _T},
    "person": {"id": str(uuid.uuid4()), "created_at": _T, "team_id": 1, "properties": '{"a": 1}',
               "is_identified": True, "is_deleted": False, "version": 3},
    "person_distinct_id2": {"team_id": 1, "distinct_id": "d", "person_id": str(uuid.uuid4()), "is_deleted": False,
                            "version": 2},
    "person_distinct_id_overrides": {"team_id": 1, "distinct_id": "d", "person_id": str(uuid.uuid4()),
                                     "is_deleted": True, "version": 2},
    "groups": {"group_type_index": 0, "group_key": "acme", "created_at": _T, "team_id": 1, "properties": "{}",
               "version": 1},
    "event_rollups": {"key": '{"team_id": 1, "event": "$pageview"}',
                      "values": '{"events": 3, "unique_distinct_ids": 2}', "start": _T, "end": _T + 60_000_000,
                      "emitted_at": _T + 61_000_000},
}
"""A record of every other kind the sink writes, as its row format reads it."""


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_table_takes_its_rows(clickhouse_server: ClickHouseServer, transport: str) -> None:
    assert set(RECORDS) == set(ROW_FORMATS) - {"events"}
    admin, client = connect(clickhouse_server.native_url), connect(getattr(clickhouse_server, transport))
    made: list[str] = []
    try:
        for records, record in RECORDS.items():
            table = f"rows_{records}_{uuid.uuid4().hex[:8]}"
            await admin.command(f"CREATE TABLE {table} AS {records}")
            made.append(table)
            fmt = ROW_FORMATS[records]
            await client.insert(table, fmt.columns, [fmt.row_of(record)])
            assert (await admin.select(f"SELECT count() FROM {table}")).rows == [[1]], records
    finally:
        for table in made:
            await admin.command(f"DROP TABLE IF EXISTS {table}")
        await admin.aclose()
        await client.aclose()


async def test_the_sinks_healthcheck_answers(clickhouse_server: ClickHouseServer) -> None:
    for transport in TRANSPORTS:
        sink = ClickHouseSink("servers_health", connect(getattr(clickhouse_server, transport)), "events", EVENTS)
        try:
            health = await sink.healthcheck()
        finally:
            await sink.close()
        assert health.ok, health.detail


def _query(url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "COLUMNS": "200", "HEADWATER_CLICKHOUSE_URL": url}
    done = subprocess.run([sys.executable, "-m", "headwater.cli", "query", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_query_runs_statements_with_and_without_rows(clickhouse_server: ClickHouseServer, transport: str) -> None:
    url = getattr(clickhouse_server, transport)
    table = f"query_{transport[:4]}_{uuid.uuid4().hex[:8]}"
    code, _, err = _query(url, f"CREATE TABLE {table} (a Int32, s String) ENGINE = MergeTree ORDER BY a")
    assert code == 0, err
    try:
        assert "ok: the statement ran and returns no rows" in err
        code, _, err = _query(url, f"INSERT INTO {table} SELECT number, toString(number) FROM system.numbers LIMIT 2")
        assert code == 0, err
        code, out, err = _query(url, "--format", "json", f"SELECT a, s FROM {table} ORDER BY a;")
        assert code == 0, err
        assert json.loads(out) == [{"a": 0, "s": "0"}, {"a": 1, "s": "1"}]
        assert _query(url, "-f", "csv", f"SELECT a, s FROM {table} ORDER BY a")[1] == "a,s\n0,0\n1,1\n"
        # rows inside the SQL: HTTP sends them; the native protocol refuses at once rather than hang
        code, _, err = _query(url, f"INSERT INTO {table} VALUES (9, 'x')")
        if transport == "http_url":
            assert code == 0, err
        else:
            assert code == 1
            assert "takes its rows as blocks" in err
        code, _, err = _query(url, "SELEC 1")
        assert code == 1
        assert "ClickHouse refused the statement: Code: 62" in err
        assert "Syntax error" in err  # the server's message is on that line, over either transport
        assert "Stack trace" not in err
        assert "Traceback" not in err
    finally:
        _query(url, f"DROP TABLE IF EXISTS {table}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_in_cluster_mode_the_sink_writes_through_a_distributed_table(clickhouse_server: ClickHouseServer,
                                                                           transport: str) -> None:
    """What cluster mode's sink does, on the server's one-node cluster: ``events`` as a Distributed table sharded by
    ``sipHash64(distinct_id)`` over a local ReplacingMergeTree (not replicated: no ZooKeeper here), inserts waiting
    for the shards (``insert_distributed_sync``); a record written twice still leaves one row under FINAL."""
    local, front = f"dist_{uuid.uuid4().hex[:8]}_local", f"dist_{uuid.uuid4().hex[:8]}"
    admin = connect(clickhouse_server.native_url)
    await admin.command(f"CREATE TABLE {local} AS events")
    await admin.command(f"CREATE TABLE {front} AS {local} "
                        f"ENGINE = Distributed({CLUSTER}, default, {local}, sipHash64(distinct_id))")
    record = _record()
    value = encode_envelope("processed_envelope", [dict(record)])
    try:
        for _ in range(2):
            sink = ClickHouseSink("servers_cluster", connect(getattr(clickhouse_server, transport), cluster=CLUSTER),
                                  front, EVENTS)
            sink.write([SourceEnvelope(value, None, 1)])
            assert (await sink.flush()).written == 1
            await sink.close()
        # the inserts carried insert_distributed_sync=1 (a setting 18.16 did not know would fail them); a shard
        # that is this very server is written in the insert either way, so this cannot tell sync from async
        local_rows = await admin.select(f"SELECT count() FROM {local}")
        assert local_rows.rows == [[2]]
        found = await admin.select(f"SELECT count() FROM {front} FINAL WHERE uuid = '{record['uuid']}'")
        assert found.rows == [[1]]
    finally:
        for table in (front, local):
            await admin.command(f"DROP TABLE IF EXISTS {table}")
        await admin.aclose()


async def test_the_servers_own_parser_takes_every_cluster_statement(clickhouse_server: ClickHouseServer) -> None:
    """18.16 cannot run ON CLUSTER here (no ZooKeeper, so no distributed DDL), but it parses a statement before it
    says so: each legacy cluster statement gets that answer, not a syntax error (code 62)."""
    client = connect(clickhouse_server.native_url)
    try:
        for statement in statements(Layout(legacy=True, cluster=CLUSTER, database="default")):
            with pytest.raises(PermanentSinkError, match="DDL background thread is not initialized"):
                await client.command(statement)
    finally:
        await client.aclose()
