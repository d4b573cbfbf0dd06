"""Records → rows: ``events`` from processed events, ``ingestion_warnings`` from warnings, the
person tables from the persons stage's rows, ``event_rollups`` from the default window's results.

Two ways in. **Avro** (the usual one): the envelopes' records go to ClickHouse as they came
from Kafka, in an Avro container (``schemas.container``), and ClickHouse maps their fields to
the table's columns with ``avro_select``; Python decodes nothing. Measured on 20,000 event rows
in chDB: ~4 to 7 µs a row for ClickHouse to read, against ~15 µs for JSONCompactEachRow plus
~25 µs of Python to decode the records and build and encode the rows. **JSON rows**: when a
batch was refused (to find the refused rows one by one) or the backend reads no Avro.

JSON rows travel as JSONCompactEachRow (one JSON array per row, the columns named once in the
INSERT): measured here on 20,000 event rows, it costs chDB ~11 µs a row to parse against
~16 µs for JSONEachRow, and Python ~9 µs a row to build and encode against ~11 µs. RowBinary
would be cheaper still for the engine but dearer to build in Python (~20 µs a row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson


def _datetime64(micros: int) -> str:
    """ClickHouse parses ``seconds.micros`` text as DateTime64 without float rounding."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{seconds}.{fraction:06d}"


def event_row(event: Any) -> tuple[object, ...]:
    """A ``ProcessedEvent`` as a row of ``events`` (in ``EVENTS.columns`` order)."""
    person_created_at = event["person_created_at"]
    return (
        event["uuid"], event["event"], event["properties"], _datetime64(event["timestamp"]), event["team_id"],
        event["distinct_id"], event["elements_chain"], _datetime64(event["created_at"]), event["person_id"],
        event["person_properties"], None if person_created_at is None else _datetime64(person_created_at),
        event["person_mode"], event["group_0"], event["group_1"], event["group_2"], event["group_3"],
        event["group_4"], event["historical_migration"],
    )


def warning_row(warning: Any) -> tuple[object, ...]:
    """An ``IngestionWarning`` as a row of ``ingestion_warnings`` (in ``WARNINGS.columns`` order)."""
    return (warning["team_id"], warning["source"], warning["type"], warning["event_uuid"], warning["details"],
            _datetime64(warning["timestamp"]))


_MICROS = "fromUnixTimestamp64Micro({}, 'UTC')"
"""Microseconds since the epoch (how records carry time) as a DateTime64(6)."""


@dataclass(frozen=True)
class RowFormat:
    """The columns a kind of record fills, and how one record becomes a row of them."""

    columns: tuple[str, ...]
    row_of: Callable[[Any], tuple[object, ...]]
    avro_select: tuple[str, ...]
    """Per column, the ClickHouse expression over the record's Avro fields that fills it."""


EVENTS = RowFormat(
    ("uuid", "event", "properties", "timestamp", "team_id", "distinct_id", "elements_chain", "created_at",
     "person_id", "person_properties", "person_created_at", "person_mode", "$group_0", "$group_1", "$group_2",
     "$group_3", "$group_4", "historical_migration"),
    event_row,
    ("uuid", "event", "properties", _MICROS.format("timestamp"), "team_id", "distinct_id", "elements_chain",
     _MICROS.format("created_at"), "person_id", "person_properties",
     f"if(isNull(person_created_at), NULL, {_MICROS.format('assumeNotNull(person_created_at)')})", "person_mode",
     "group_0", "group_1", "group_2", "group_3", "group_4", "historical_migration"),
)
WARNINGS = RowFormat(("team_id", "source", "type", "event_uuid", "details", "timestamp"), warning_row,
                     ("team_id", "source", "type", "event_uuid", "details", _MICROS.format("timestamp")))



def person_row(person: Any) -> tuple[object, ...]:
    """A ``PersonRow`` record as a row of ``person``."""
    return (person["id"], _datetime64(person["created_at"]), person["team_id"], person["properties"],
            int(person["is_identified"]), int(person["is_deleted"]), person["version"])


def distinct_id_row(row: Any) -> tuple[object, ...]:
    """A ``PersonDistinctIdRow`` record as a row of ``person_distinct_id2`` or the overrides table."""
    return (row["team_id"], row["distinct_id"], row["person_id"], int(row["is_deleted"]), row["version"])


PERSONS = RowFormat(
    ("id", "created_at", "team_id", "properties", "is_identified", "is_deleted", "version"), person_row,
    ("id", _MICROS.format("created_at"), "team_id", "properties", "toInt8(is_identified)", "toInt8(is_deleted)",
     "version"),
)
DISTINCT_IDS = RowFormat(
    ("team_id", "distinct_id", "person_id", "is_deleted", "version"), distinct_id_row,
    ("team_id", "distinct_id", "person_id", "toInt8(is_deleted)", "version"),
)



def group_row(row: Any) -> tuple[object, ...]:
    """A ``GroupRow`` record as a row of ``groups``."""
    return (row["group_type_index"], row["group_key"], _datetime64(row["created_at"]), row["team_id"],
            row["properties"], row["version"])


GROUPS = RowFormat(
    ("group_type_index", "group_key", "created_at", "team_id", "group_properties", "version"), group_row,
    ("group_type_index", "group_key", _MICROS.format("created_at"), "team_id", "properties", "version"),
)



def rollup_row(window: Any) -> tuple[object, ...]:
    """A ``WindowResult`` of a window keyed ``[team_id, event]`` with ``events`` (count) and
    ``unique_distinct_ids`` (uniq of distinct_id) as a row of ``event_rollups``."""
    key, values = orjson.loads(window["key"]), orjson.loads(window["values"])
    return (int(key["team_id"]), key["event"], _datetime64(window["start"]), _datetime64(window["end"]),
            int(values["events"]), int(values["unique_distinct_ids"]), _datetime64(window["emitted_at"]))


ROLLUPS = RowFormat(
    ("team_id", "event", "window_start", "window_end", "events", "unique_distinct_ids", "emitted_at"), rollup_row,
    ("toInt64(JSONExtractString(key, 'team_id'))", "JSONExtractString(key, 'event')", _MICROS.format("start"),
     _MICROS.format("`end`"), "toUInt64(JSONExtractFloat(values, 'events'))",
     "toUInt64(JSONExtractFloat(values, 'unique_distinct_ids'))", _MICROS.format("emitted_at")),
)

ROW_FORMATS: dict[str, RowFormat] = {
    "events": EVENTS, "ingestion_warnings": WARNINGS, "person": PERSONS, "person_distinct_id2": DISTINCT_IDS,
    "person_distinct_id_overrides": DISTINCT_IDS, "groups": GROUPS, "event_rollups": ROLLUPS,
}
"""The config's ``records`` → the row format of that table."""
