"""The ClickHouse sink: buffered rows, one insert per flush, idempotent by the table's key.

The ``events`` table is a ReplacingMergeTree whose sorting key ends in the event uuid, so a
redelivered event collapses into one row (``FINAL`` in queries sees one row at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from schemas.events import ProcessedEvent
from sinks.base import FlushResult, Rejected
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.rows import event_row
from sinks.errors import PermanentSinkError, RetriableSinkError

log = logging.getLogger("headwater.sinks.clickhouse")

BACKOFF_START = 0.2
BACKOFF_CAP = 30.0


class ClickHouseSink:
    def __init__(self, name: str, client: ClickHouseClient, table: str = "events") -> None:
        self.name = name
        self._client = client
        self._table = table
        self._pending: list[ProcessedEvent] = []
        self.retries = 0

    def write(self, events: Sequence[ProcessedEvent]) -> None:
        self._pending.extend(events)

    async def flush(self) -> FlushResult:
        events, self._pending = self._pending, []
        rejected: list[Rejected] = []
        await self._insert(events, rejected)
        return FlushResult(written=len(events) - len(rejected), rejected=rejected)

    async def _insert(self, events: list[ProcessedEvent], rejected: list[Rejected]) -> None:
        """Insert, retrying transient errors; split a refused batch to find the refused rows."""
        if not events:
            return
        delay = BACKOFF_START
        while True:
            try:
                await self._client.insert(self._table, [event_row(e) for e in events])
                return
            except RetriableSinkError as exc:
                self.retries += 1
                log.warning("ClickHouse insert failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(BACKOFF_CAP, delay * 2)
            except PermanentSinkError as exc:
                if len(events) == 1:
                    rejected.append(Rejected(events[0], str(exc)))
                    return
                middle = len(events) // 2
                await self._insert(events[:middle], rejected)
                await self._insert(events[middle:], rejected)
                return

    async def close(self) -> None:
        await self._client.aclose()
