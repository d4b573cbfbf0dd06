"""Records → JSONEachRow rows: ``events`` from processed events, ``ingestion_warnings`` from warnings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _datetime64(micros: int) -> str:
    """ClickHouse parses ``seconds.micros`` text as DateTime64 without float rounding."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{seconds}.{fraction:06d}"


def event_row(event: Any) -> dict[str, object]:
    """A ``ProcessedEvent`` as a row of ``events``."""
    return {
        "uuid": event["uuid"],
        "event": event["event"],
        "properties": event["properties"],
        "timestamp": _datetime64(event["timestamp"]),
        "team_id": event["team_id"],
        "distinct_id": event["distinct_id"],
        "elements_chain": event["elements_chain"],
        "created_at": _datetime64(event["created_at"]),
        "person_id": event["person_id"],
        "person_properties": event["person_properties"],
        "person_created_at": (
            _datetime64(event["person_created_at"]) if event["person_created_at"] is not None else None
        ),
        "person_mode": event["person_mode"],
        "$group_0": event["group_0"],
        "$group_1": event["group_1"],
        "$group_2": event["group_2"],
        "$group_3": event["group_3"],
        "$group_4": event["group_4"],
        "historical_migration": event["historical_migration"],
    }


def warning_row(warning: Any) -> dict[str, object]:
    """An ``IngestionWarning`` as a row of ``ingestion_warnings``."""
    return {
        "team_id": warning["team_id"],
        "source": warning["source"],
        "type": warning["type"],
        "event_uuid": warning["event_uuid"],
        "details": warning["details"],
        "timestamp": _datetime64(warning["timestamp"]),
    }


RowBuilder = Callable[[Any], dict[str, object]]

ROW_BUILDERS: dict[str, RowBuilder] = {"events": event_row, "ingestion_warnings": warning_row}
"""The config's ``records`` → how a record becomes a row of that table."""
