"""The ClickHouse sink: buffered rows, one insert per flush, idempotent by the table's key.

Its tables are ReplacingMergeTrees whose sorting keys end in the event uuid, so a redelivered
record collapses into one row (``FINAL`` in queries sees one row at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sinks import telemetry
from sinks.base import FlushResult, Record, Rejected
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.rows import RowFormat
from sinks.errors import PermanentSinkError, RetriableSinkError

log = logging.getLogger("headwater.sinks.clickhouse")

BACKOFF_START = 0.2
BACKOFF_CAP = 30.0


class ClickHouseSink:
    """A ``sinks.base.Sink``: one insert per flush; a refused batch is split to find the refused rows."""

    def __init__(self, name: str, client: ClickHouseClient, table: str, rows: RowFormat) -> None:
        self.name = name
        self._client = client
        self._table = table
        self._rows = rows
        self._pending: list[Record] = []
        self._retries = telemetry.RETRIES.labels(name)

    def write(self, records: Sequence[Record]) -> None:
        self._pending.extend(records)

    async def flush(self) -> FlushResult:
        records, self._pending = self._pending, []
        rejected: list[Rejected] = []
        await self._insert(records, [self._rows.row_of(r) for r in records], rejected)
        return FlushResult(written=len(records) - len(rejected), rejected=rejected)

    async def _insert(self, records: list[Record], rows: list[tuple[object, ...]], rejected: list[Rejected]) -> None:
        """Insert, retrying transient errors; split a refused batch to find the refused rows."""
        if not records:
            return
        delay = BACKOFF_START
        while True:
            try:
                await self._client.insert(self._table, self._rows.columns, rows)
                return
            except RetriableSinkError as exc:
                self._retries.inc()
                log.warning("ClickHouse insert failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(BACKOFF_CAP, delay * 2)
            except PermanentSinkError as exc:
                if len(records) == 1:
                    rejected.append(Rejected(records[0], str(exc)))
                    return
                middle = len(records) // 2
                await self._insert(records[:middle], rows[:middle], rejected)
                await self._insert(records[middle:], rows[middle:], rejected)
                return

    async def close(self) -> None:
        await self._client.aclose()
