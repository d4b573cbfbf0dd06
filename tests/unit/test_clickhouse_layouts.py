"""The ClickHouse DDL in each layout (``schemas.clickhouse``), checked with chDB's own parser and engine.

The cluster layout cannot run here (no ZooKeeper, no second node), so its statements are parsed by
chDB (``formatQuery``: ClickHouse's parser, nothing executed) and their engines checked; the
single-node layouts are also run in a chDB session of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.clickhouse import EVENTS, PERSON, STATEMENTS, TABLES, Layout, statements, table_statements

chdb = pytest.importorskip("chdb", reason="chDB is the dev extra's (make setup installs it)")

LAYOUTS = {
    "current": Layout(),
    "legacy": Layout(legacy=True),
    "cluster": Layout(cluster="headwater_cluster", database="analytics"),
    "cluster-legacy": Layout(legacy=True, cluster="headwater_cluster", database="analytics"),
}


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def formatted(statement: str) -> str:
    """``statement`` as ClickHouse's parser reads it (raises chDB's error for one it cannot parse)."""
    return str(chdb.query(f"SELECT formatQuery({_literal(statement)})", "TSVRaw").bytes().decode())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_statement_of_every_layout_parses(layout: str) -> None:
    for statement in statements(LAYOUTS[layout]):
        assert formatted(statement).startswith("CREATE TABLE IF NOT EXISTS")


def test_the_parser_check_refuses_what_clickhouse_cannot_parse() -> None:
    with pytest.raises(RuntimeError, match="Syntax error"):
        formatted("CREATE TABLE t (a UInt8) ENGINE = ReplicatedReplacingMergeTree('/p', '{replica}'")


def test_a_cluster_shards_events_by_distinct_id_behind_a_distributed_table() -> None:
    local, distributed = (formatted(s) for s in table_statements(EVENTS, LAYOUTS["cluster"]))
    assert local.startswith("CREATE TABLE IF NOT EXISTS analytics.events_local ON CLUSTER headwater_cluster\n")
    assert ("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/analytics.events_local', "
            "'{replica}')") in local
    assert "PARTITION BY toYYYYMM(timestamp)" in local
    assert distributed == ("CREATE TABLE IF NOT EXISTS analytics.events ON CLUSTER headwater_cluster "
                           "AS analytics.events_local\n"
                           "ENGINE = Distributed(headwater_cluster, analytics, events_local, sipHash64(distinct_id))\n")


def test_a_cluster_keeps_person_tables_whole_on_every_node() -> None:
    for table in TABLES:
        if table.shard_by is not None:
            continue
        (only,) = (formatted(s) for s in table_statements(table, LAYOUTS["cluster"]))
        assert f"analytics.{table.name} ON CLUSTER headwater_cluster\n" in only
        version = f", {table.version}" if table.version else ""
        assert (f"ReplicatedReplacingMergeTree('/clickhouse/tables/all/analytics.{table.name}', "
                f"'{{shard}}-{{replica}}'{version})") in only
    assert PERSON.shard_by is None


def test_every_table_is_replicated_in_a_cluster_and_only_per_event_tables_are_distributed() -> None:
    rendered = [formatted(s) for s in statements(LAYOUTS["cluster"])]
    engines = [found[1] for s in rendered if (found := re.search(r"ENGINE = (\w+)", s))]
    assert set(engines) == {"ReplicatedReplacingMergeTree", "Distributed"}
    sharded = {t.name for t in TABLES if t.shard_by}
    assert sharded == {"events", "ingestion_warnings"}
    assert engines.count("Distributed") == len(sharded)
    assert all(" ON CLUSTER headwater_cluster" in s for s in rendered)


def test_the_legacy_layout_uses_no_type_older_servers_lack() -> None:
    for statement in statements(LAYOUTS["legacy"]) + statements(LAYOUTS["cluster-legacy"]):
        assert not re.search(r"DateTime64|\bBool\b|now64", statement), statement


def test_the_current_layout_on_one_node_is_the_one_headwater_always_made() -> None:
    assert tuple(statements()) == STATEMENTS
    assert all(" ON CLUSTER " not in s and "Replicated" not in s for s in STATEMENTS)


@pytest.fixture
def session() -> Iterator[Any]:
    from chdb import session as chdb_session

    s = chdb_session.Session()  # type: ignore[no-untyped-call]
    try:
        yield s
    finally:
        s.cleanup()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("layout", ["current", "legacy"])
def test_the_single_node_layouts_create_their_tables_in_chdb(layout: str, session: Any) -> None:
    for statement in statements(LAYOUTS[layout]):
        session.query(statement)
        session.query(statement)  # idempotent
    names = session.query("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name",
                          "TSVRaw").bytes().decode().split()
    assert names == sorted(t.name for t in TABLES)
    types = session.query("SELECT type FROM system.columns WHERE database = currentDatabase() AND table = 'events' "
                          "AND name = 'timestamp'", "TSVRaw").bytes().decode().strip()
    assert types == ("DateTime('UTC')" if layout == "legacy" else "DateTime64(6, 'UTC')")


@pytest.mark.parametrize("name", ["my-cluster", "a b", "x;DROP", "1abc"])
def test_a_cluster_or_database_name_must_be_a_plain_identifier(name: str) -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        Layout(cluster=name)
    with pytest.raises(ValueError, match="plain identifier"):
        Layout(database=name)
