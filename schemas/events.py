"""The records that travel on Headwater's topics, as typed dicts (what fastavro reads and writes).

Times are integers: microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from typing import TypedDict


class RawEvent(TypedDict):
    """An event on ``events_raw``: see ``avro/raw_envelope.v2.avsc`` for each field."""

    uuid: str
    event: str
    distinct_id: str
    token: str
    timestamp: int
    now: int
    sent_at: int | None
    ip: str | None
    properties: str
    set: str | None
    set_once: str | None
    historical_migration: bool
    capture_warnings: list[str]
    skip_person_processing: bool


class IngestionWarning(TypedDict):
    """A warning on ``ingestion_warnings``, one row of ClickHouse's ``ingestion_warnings`` table."""

    team_id: int
    type: str
    source: str
    event_uuid: str
    details: str
    timestamp: int


class ProcessedEvent(TypedDict):
    """An event on ``events_processed``, one row of ClickHouse's ``events`` table."""

    uuid: str
    event: str
    properties: str
    timestamp: int
    team_id: int
    distinct_id: str
    elements_chain: str
    created_at: int
    person_id: str
    person_properties: str
    person_created_at: int | None
    person_mode: str
    group_0: str
    group_1: str
    group_2: str
    group_3: str
    group_4: str
    historical_migration: bool
