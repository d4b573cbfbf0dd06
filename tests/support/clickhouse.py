"""Querying ClickHouse from tests, and waiting until a count is reached."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from headwater.runtime.settings import Endpoints
from sinks.clickhouse.client import QueryResult
from sinks.clickhouse.client import connect as clickhouse_connect
from tests.support.waiting import Watched, wait_until


async def select(endpoints: Endpoints, sql: str) -> QueryResult:
    client = clickhouse_connect(endpoints.clickhouse)
    try:
        return await client.select(sql)
    finally:
        await client.aclose()


async def count(endpoints: Endpoints, sql: str) -> int:
    """The one number ``sql`` selects."""
    return int((await select(endpoints, sql)).rows[0][0])


async def wait_for_count(endpoints: Endpoints, sql: str, expected: int, timeout: float = 60.0,
                         logs: Sequence[Watched | Path] = ()) -> int:
    """Poll ``sql`` (one number) until it reaches ``expected``; return it (it may be more)."""
    last = -1

    async def reached() -> bool:
        nonlocal last
        last = await count(endpoints, sql)
        return last >= expected

    await wait_until(reached, timeout, lambda: f"{sql!r} gave {last}, not {expected}", interval=0.5, logs=logs)
    return last
