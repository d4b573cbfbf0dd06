"""ClickHouse DDL: PostHog's table layouts (docs/ingestion.md, "In ClickHouse"; docs/_clickhouse_servers.md).

Each table is described once (``Table``) and rendered by ``statements`` for a ``Layout``:

- **current** (the default): the types PostHog uses (``DateTime64(6, 'UTC')``, ``Bool``,
  ``now64(6)``), for chDB and current servers;
- **legacy** (``Layout(legacy=True)``): the same tables in the types a 2018 server has
  (ClickHouse 18.16, Debian's package): ``DateTime64(p, 'UTC')`` becomes ``DateTime('UTC')``
  (times keep whole seconds), ``Bool`` becomes ``UInt8``, ``now64(6)`` becomes ``now()``, and
  ``events`` sorts by ``cityHash64(toString(uuid))`` (18.16's ``cityHash64`` takes no UUID);
- **cluster** (``Layout(cluster=name, database=db)``): every table ``ON CLUSTER name`` as a
  ``ReplicatedReplacingMergeTree``. Tables of per-event rows are sharded: ``<table>_local`` holds
  each shard's part (ZooKeeper path ``/clickhouse/tables/{shard}/<db>.<table>_local``) and a
  ``Distributed`` table under the table's own name spreads inserts by the table's shard key
  (``events`` by ``sipHash64(distinct_id)``) and reads every shard; a row written twice has the
  same key, so it lands on the same shard, where ReplacingMergeTree collapses it. Person tables,
  groups and the rollups are whole on every node: one replicated table under its own name,
  every node a replica of the one path ``/clickhouse/tables/all/<db>.<table>``.

Writers and readers use the tables' plain names in every layout. Statements are idempotent;
``headwater migrate`` runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""What a cluster or database name may be here: it is written into DDL unquoted."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    default: str | None = None


@dataclass(frozen=True)
class Table:
    """One table: its columns (current types), its ReplacingMergeTree, and how a cluster spreads it."""

    name: str
    columns: tuple[Column, ...]
    order_by: str
    version: str | None = None
    """The ReplacingMergeTree's version column (the newest row wins), or None (the last inserted wins)."""
    partition_by: str | None = None
    shard_by: str | None = None
    """In a cluster, the Distributed table's sharding key; None: the table is whole on every node."""
    legacy_order_by: str | None = None
    """The sorting key in the legacy layout, where it differs (18.16's functions take fewer types)."""


@dataclass(frozen=True)
class Layout:
    """How to render the tables: for which server, and for a single node or a cluster."""

    legacy: bool = False
    cluster: str | None = None
    database: str = "default"

    def __post_init__(self) -> None:
        for what, name in (("cluster", self.cluster), ("database", self.database)):
            if name is not None and not IDENTIFIER.match(name):
                raise ValueError(f"ClickHouse {what} name {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")


LEGACY_TYPES = {"DateTime64(6, 'UTC')": "DateTime('UTC')", "DateTime64(3, 'UTC')": "DateTime('UTC')",
                "Bool": "UInt8"}
LEGACY_DEFAULTS = {"now64(6)": "now()"}
"""The current types and defaults a 2018 server (18.16) lacks, and what the legacy layout uses instead."""

_INSERTED_AT = Column("inserted_at", "DateTime64(6, 'UTC')", "now64(6)")

EVENTS = Table(
    "events",
    (Column("uuid", "UUID"), Column("event", "String"), Column("properties", "String"),
     Column("timestamp", "DateTime64(6, 'UTC')"), Column("team_id", "Int64"), Column("distinct_id", "String"),
     Column("elements_chain", "String"), Column("created_at", "DateTime64(6, 'UTC')"), Column("person_id", "UUID"),
     Column("person_properties", "String"), Column("person_created_at", "DateTime64(3, 'UTC')"),
     Column("person_mode", "Enum8('full' = 0, 'propertyless' = 1, 'force_upgrade' = 2)"),
     *(Column(f"$group_{i}", "String") for i in range(5)), Column("historical_migration", "Bool"), _INSERTED_AT),
    order_by="(team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))",
    partition_by="toYYYYMM(timestamp)",
    shard_by="sipHash64(distinct_id)",
    legacy_order_by="(team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(toString(uuid)))",
)

INGESTION_WARNINGS = Table(
    "ingestion_warnings",
    (Column("team_id", "Int64"), Column("source", "String"), Column("type", "String"), Column("event_uuid", "String"),
     Column("details", "String"), Column("timestamp", "DateTime64(6, 'UTC')"), _INSERTED_AT),
    order_by="(team_id, toHour(timestamp), type, source, event_uuid)",
    partition_by="toYYYYMM(timestamp)",
    shard_by="sipHash64(event_uuid)",
)

# Persons (docs/persons.md). ReplacingMergeTree(version): the newest write of a person or a
# distinct id wins, whatever order the rows arrive in; read them with FINAL.
PERSON = Table(
    "person",
    (Column("id", "UUID"), Column("created_at", "DateTime64(3, 'UTC')"), Column("team_id", "Int64"),
     Column("properties", "String"), Column("is_identified", "Int8"), Column("is_deleted", "Int8"),
     Column("version", "UInt64"), _INSERTED_AT),
    order_by="(team_id, id)",
    version="version",
)

_DISTINCT_ID_COLUMNS = (Column("team_id", "Int64"), Column("distinct_id", "String"), Column("person_id", "UUID"),
                        Column("is_deleted", "Int8"), Column("version", "Int64"), _INSERTED_AT)

PERSON_DISTINCT_ID2 = Table("person_distinct_id2", _DISTINCT_ID_COLUMNS, "(team_id, distinct_id)", "version")

PERSON_DISTINCT_ID_OVERRIDES = Table("person_distinct_id_overrides", _DISTINCT_ID_COLUMNS, "(team_id, distinct_id)",
                                     "version")
"""For each distinct id a merge moved, the person it belongs to now: events keep the person id
they were ingested with, and queries join this table to count people as they are now."""

GROUPS = Table(
    "groups",
    (Column("group_type_index", "UInt8"), Column("group_key", "String"), Column("created_at", "DateTime64(6, 'UTC')"),
     Column("team_id", "Int64"), Column("group_properties", "String"), Column("version", "UInt64"), _INSERTED_AT),
    order_by="(team_id, group_type_index, group_key)",
    version="version",
)

EVENT_ROLLUPS = Table(
    "event_rollups",
    (Column("team_id", "Int64"), Column("event", "String"), Column("window_start", "DateTime64(6, 'UTC')"),
     Column("window_end", "DateTime64(6, 'UTC')"), Column("events", "UInt64"), Column("unique_distinct_ids", "UInt64"),
     Column("emitted_at", "DateTime64(6, 'UTC')"), _INSERTED_AT),
    order_by="(team_id, event, window_start)",
    version="emitted_at",
)
"""Events and unique distinct ids per project, event name and minute, from the default
``event_rollups`` window: one row per window (a window sent again replaces its row)."""

TABLES: tuple[Table, ...] = (EVENTS, INGESTION_WARNINGS, PERSON, PERSON_DISTINCT_ID2, PERSON_DISTINCT_ID_OVERRIDES,
                             GROUPS, EVENT_ROLLUPS)


def _columns(table: Table, legacy: bool) -> str:
    lines = []
    for column in table.columns:
        type_, default = column.type, column.default
        if legacy:
            type_ = LEGACY_TYPES.get(type_, type_)
            default = LEGACY_DEFAULTS.get(default, default) if default else default
        lines.append(f"    `{column.name}` {type_}" + (f" DEFAULT {default}" if default else ""))
    return "(\n" + ",\n".join(lines) + "\n)"


def _keys(table: Table, legacy: bool) -> str:
    partition = f"PARTITION BY {table.partition_by}\n" if table.partition_by else ""
    order_by = table.legacy_order_by if legacy and table.legacy_order_by else table.order_by
    return f"{partition}ORDER BY {order_by}"


def _engine(table: Table, layout: Layout, name: str) -> str:
    version = [table.version] if table.version else []
    if layout.cluster is None:
        return f"ReplacingMergeTree({', '.join(version)})" if version else "ReplacingMergeTree"
    if table.shard_by:  # one replica set per shard
        path, replica = f"/clickhouse/tables/{{shard}}/{layout.database}.{name}", "{replica}"
    else:  # every node a replica of the whole table ({replica} names a replica only within its shard)
        path, replica = f"/clickhouse/tables/all/{layout.database}.{name}", "{shard}-{replica}"
    args = ", ".join([f"'{path}'", f"'{replica}'", *version])
    return f"ReplicatedReplacingMergeTree({args})"


def table_statements(table: Table, layout: Layout) -> list[str]:
    """The statements that create ``table`` in ``layout`` (two for a sharded table in a cluster)."""
    columns = _columns(table, layout.legacy)
    if layout.cluster is None:
        return [f"CREATE TABLE IF NOT EXISTS {table.name}\n{columns}\n"
                f"ENGINE = {_engine(table, layout, table.name)}\n{_keys(table, layout.legacy)}"]
    db, cluster = layout.database, layout.cluster
    if table.shard_by is None:
        return [f"CREATE TABLE IF NOT EXISTS {db}.{table.name} ON CLUSTER {cluster}\n{columns}\n"
                f"ENGINE = {_engine(table, layout, table.name)}\n{_keys(table, layout.legacy)}"]
    local = f"{table.name}_local"
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {cluster}\n{columns}\n"
        f"ENGINE = {_engine(table, layout, local)}\n{_keys(table, layout.legacy)}",
        f"CREATE TABLE IF NOT EXISTS {db}.{table.name} ON CLUSTER {cluster} AS {db}.{local}\n"
        f"ENGINE = Distributed({cluster}, {db}, {local}, {table.shard_by})",
    ]


def statements(layout: Layout | None = None) -> list[str]:
    """Every table's statements, in order, for ``layout`` (default: current types, one node)."""
    layout = layout or Layout()
    return [s for table in TABLES for s in table_statements(table, layout)]


STATEMENTS: tuple[str, ...] = tuple(statements())
"""The current layout on one node (chDB, a current server)."""
