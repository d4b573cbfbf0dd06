"""ClickHouse DDL: PostHog's table layouts (docs/ingestion.md, "In ClickHouse"). Statements are idempotent;
``headwater migrate`` runs them."""

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

# Persons (docs/persons.md). ReplacingMergeTree(version): the newest write of a person or a
# distinct id wins, whatever order the rows arrive in; read them with FINAL.
PERSON = """
CREATE TABLE IF NOT EXISTS person
(
    id UUID,
    created_at DateTime64(3, 'UTC'),
    team_id Int64,
    properties String,
    is_identified Int8,
    is_deleted Int8,
    version UInt64,
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (team_id, id)
"""

_DISTINCT_ID_COLUMNS = """
(
    team_id Int64,
    distinct_id String,
    person_id UUID,
    is_deleted Int8,
    version Int64,
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (team_id, distinct_id)
"""

PERSON_DISTINCT_ID2 = "CREATE TABLE IF NOT EXISTS person_distinct_id2" + _DISTINCT_ID_COLUMNS

PERSON_DISTINCT_ID_OVERRIDES = "CREATE TABLE IF NOT EXISTS person_distinct_id_overrides" + _DISTINCT_ID_COLUMNS
"""For each distinct id a merge moved, the person it belongs to now: events keep the person id
they were ingested with, and queries join this table to count people as they are now."""

GROUPS = """
CREATE TABLE IF NOT EXISTS groups
(
    group_type_index UInt8,
    group_key String,
    created_at DateTime64(6, 'UTC'),
    team_id Int64,
    group_properties String,
    version UInt64,
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (team_id, group_type_index, group_key)
"""

EVENT_ROLLUPS = """
CREATE TABLE IF NOT EXISTS event_rollups
(
    team_id Int64,
    event String,
    window_start DateTime64(6, 'UTC'),
    window_end DateTime64(6, 'UTC'),
    events UInt64,
    unique_distinct_ids UInt64,
    emitted_at DateTime64(6, 'UTC'),
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(emitted_at)
ORDER BY (team_id, event, window_start)
"""
"""Events and unique distinct ids per project, event name and minute, from the default
``event_rollups`` window: one row per window (a window sent again replaces its row)."""

STATEMENTS: tuple[str, ...] = (EVENTS, INGESTION_WARNINGS, PERSON, PERSON_DISTINCT_ID2, PERSON_DISTINCT_ID_OVERRIDES,
                               GROUPS, EVENT_ROLLUPS)
