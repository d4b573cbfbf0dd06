"""Registers the ``clickhouse`` sink type: its config model and how it is built."""

from __future__ import annotations

from headwater.runtime.settings import Endpoints
from sinks.clickhouse.client import connect
from sinks.clickhouse.config import ClickHouseConfig
from sinks.clickhouse.rows import ROW_FORMATS
from sinks.clickhouse.sink import ClickHouseSink
from sinks.registry import register_sink


def build(name: str, config: ClickHouseConfig, endpoints: Endpoints) -> ClickHouseSink:
    client = connect(endpoints.clickhouse, cluster=endpoints.clickhouse_cluster)
    return ClickHouseSink(name, client, config.target_table, ROW_FORMATS[config.records])


register_sink("clickhouse", ClickHouseConfig, build,
              "Rows into a ClickHouse table (embedded chDB or a server), idempotent by event uuid.")
