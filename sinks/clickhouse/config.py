"""The ``clickhouse`` sink's settings (``sinks[].config`` in topology.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sinks.registry import SinkConfig

Records = Literal["events", "ingestion_warnings", "person", "person_distinct_id2", "person_distinct_id_overrides",
                  "groups", "event_rollups"]


class ClickHouseConfig(SinkConfig):
    """Writes processed events (or ingestion warnings, person rows, window results) into a ClickHouse table."""

    records: Records = Field(
        "events", description="What the source topic carries, and so which table it fills."
    )
    table: str | None = Field(None, description="Target table; defaults to the name of `records`.")

    @property
    def target_table(self) -> str:
        return self.table or self.records
