"""ClickHouse DDL (docs/ingestion.md, "In ClickHouse"). Statements are idempotent; ``headwater migrate`` runs them."""

from __future__ import annotations

EVENTS = """
CREATE TABLE IF NOT EXISTS events
(
    uuid UUID,
    event String,
    properties String,
    timestamp DateTime64(6, 'UTC'),
    team_id Int64,
    distinct_id String,
    elements_chain String,
    created_at DateTime64(6, 'UTC'),
    person_id UUID,
    person_properties String,
    person_created_at DateTime64(3, 'UTC'),
    person_mode Enum8('full' = 0, 'propertyless' = 1, 'force_upgrade' = 2),
    `$group_0` String,
    `$group_1` String,
    `$group_2` String,
    `$group_3` String,
    `$group_4` String,
    historical_migration Bool,
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))
"""

INGESTION_WARNINGS = """
CREATE TABLE IF NOT EXISTS ingestion_warnings
(
    team_id Int64,
    source String,
    type String,
    event_uuid String,
    details String,
    timestamp DateTime64(6, 'UTC'),
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (team_id, toHour(timestamp), type, source, event_uuid)
"""

STATEMENTS: tuple[str, ...] = (EVENTS, INGESTION_WARNINGS)
