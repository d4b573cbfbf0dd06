"""The ClickHouse sink's Avro path writes the same rows as its JSON rows path, without falling back."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import REGISTRY

from headwater.runtime.settings import Endpoints
from schemas.events import ProcessedEvent
from schemas.serializer import encode_envelope
from sinks.base import SourceEnvelope
from sinks.clickhouse.client import connect
from sinks.clickhouse.rows import EVENTS
from sinks.clickhouse.sink import ClickHouseSink
from tests.support.clickhouse import select


def _record(**overrides: Any) -> ProcessedEvent:
    base = ProcessedEvent(
        uuid=str(uuid.uuid4()), event="$pageview", properties='{"$current_url": "/", "n": 1.5, "ü": "✓"}',
        timestamp=1_700_000_000_123_456, team_id=7, distinct_id="user-ü", elements_chain="a:b",
        created_at=1_700_000_001_654_321, person_id=str(uuid.uuid4()), person_properties='{"plan": "pro"}',
        person_created_at=None, person_mode="propertyless", group_0="acme", group_1="", group_2="g2",
        group_3="", group_4="g4", historical_migration=True,
    )
    return ProcessedEvent(**{**base, **overrides})  # type: ignore[typeddict-item]


def _fallbacks(sink: str) -> float:
    return REGISTRY.get_sample_value("headwater_sink_fallbacks_total", {"sink": sink}) or 0.0


async def _rows(endpoints: Endpoints, table: str) -> list[list[Any]]:
    columns = ", ".join(f"`{c}`" for c in EVENTS.columns if c != "uuid")
    return (await select(endpoints, f"SELECT {columns} FROM {table} ORDER BY distinct_id")).rows


async def test_avro_and_json_rows_write_the_same_values(stack: Endpoints) -> None:
    tables = {way: f"avro_{way}_{uuid.uuid4().hex[:8]}" for way in ("avro", "rows")}
    client = connect(stack.clickhouse)
    for table in tables.values():
        await client.command(f"CREATE TABLE {table} AS events")
    records = [_record(), _record(distinct_id="user-2", person_created_at=1_600_000_000_500_000,
                                   historical_migration=False, person_mode="full")]
    value = encode_envelope("processed_envelope", [dict(r) for r in records])
    try:
        for way, table in tables.items():
            sink = ClickHouseSink(f"avro_test_{way}", connect(stack.clickhouse), table, EVENTS)
            before = _fallbacks(sink.name)
            # with a count header the records go as Avro; without one they are decoded and sent as rows
            sink.write([SourceEnvelope(value, None, len(records) if way == "avro" else None)])
            result = await sink.flush()
            await sink.close()
            assert (result.written, result.rejected, result.unwritten) == (2, [], [])
            assert _fallbacks(sink.name) == before, f"the {way} insert fell back to rows"
        avro, rows = await _rows(stack, tables["avro"]), await _rows(stack, tables["rows"])
        assert avro == rows
        assert avro[0][2] == "2023-11-14 22:13:20.123456"  # microseconds kept
    finally:
        for table in tables.values():
            await client.command(f"DROP TABLE IF EXISTS {table}")
        await client.aclose()
