"""The ClickHouse sink: buffered envelopes, one insert per flush, idempotent by the table's key.

A flush sends the envelopes' records to ClickHouse as they came from Kafka, in one Avro
container per envelope schema (``sinks.clickhouse.avro``): Python decodes nothing. Envelopes
that are not laid out for that, a backend that reads no Avro (the native protocol, a legacy
server: ``sinks.clickhouse.server``), and a batch ClickHouse refused go as rows instead
(``rows.py``); a refused batch of rows is split in halves until the refused rows are found, and
those are returned for the dead-letter topic.

Its tables are ReplacingMergeTrees whose sorting keys end in the event uuid, so a redelivered
record collapses into one row (``FINAL`` in queries sees one row at once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from schemas.container import EncodedRecords, container_chunks, item_schema
from schemas.errors import SchemaError
from sinks import telemetry
from sinks.base import FlushResult, Health, Record, Rejected, SourceEnvelope, Unwritten
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.rows import RowFormat
from sinks.errors import PermanentSinkError, RetriableSinkError
from sinks.retry import retrying

log = logging.getLogger("headwater.sinks.clickhouse")


class ClickHouseSink:
    """A ``sinks.base.Sink``: one insert per flush; a refused batch is split to find the refused rows."""

    def __init__(self, name: str, client: ClickHouseClient, table: str, rows: RowFormat) -> None:
        self.name = name
        self._client = client
        self._table = table
        self._rows = rows
        self._pending: list[SourceEnvelope] = []
        self._retries = telemetry.RETRIES.labels(name)
        self._fallbacks = telemetry.FALLBACKS.labels(name)

    async def start(self) -> None:
        return None  # the client connects on first use; an unreachable server is retried by flush

    async def healthcheck(self) -> Health:
        try:
            await self._client.select(f"SELECT count() FROM {self._table} WHERE 0")  # noqa: S608 - a name from the topology
        except (RetriableSinkError, PermanentSinkError) as exc:
            return Health(False, f"ClickHouse table {self._table}: {exc}")
        return Health(True, f"ClickHouse table {self._table} answers")

    def write(self, envelopes: Sequence[SourceEnvelope]) -> None:
        self._pending.extend(envelopes)

    async def flush(self) -> FlushResult:
        envelopes, self._pending = self._pending, []
        if not envelopes:
            return FlushResult(written=0)
        # asked once per client; retried like an insert while the server cannot be reached
        server = await retrying(self._client.server, retries=self._retries, log=log, what="ClickHouse version")
        as_rows: list[SourceEnvelope] = []
        by_schema: dict[int, list[EncodedRecords]] = {}
        for envelope in envelopes:
            encoded = envelope.encoded() if server.reads_avro else None
            if encoded is None:
                as_rows.append(envelope)
            else:
                by_schema.setdefault(encoded.schema_id, []).append(encoded)
        written = 0
        for schema_id, parts in by_schema.items():
            try:
                await self._retrying(partial(self._insert_avro, schema_id, parts))
            except PermanentSinkError as exc:
                self._fallbacks.inc()
                log.warning("ClickHouse refused %d records as Avro (%s); inserting them as rows to find the refused",
                            sum(p.count for p in parts), exc)
                as_rows += [e for e in envelopes if (enc := e.encoded()) is not None and enc.schema_id == schema_id]
                continue
            written += sum(p.count for p in parts)
        records: list[Record] = []
        unwritten: list[Unwritten] = []
        for envelope in as_rows:
            try:
                records += envelope.records()
            except SchemaError as exc:
                unwritten.append(Unwritten(envelope, str(exc)))
        rejected: list[Rejected] = []
        await self._insert_rows(records, [self._rows.row_of(r) for r in records], rejected)
        return FlushResult(written=written + len(records) - len(rejected), rejected=rejected, unwritten=unwritten)

    async def _insert_avro(self, schema_id: int, parts: list[EncodedRecords]) -> None:
        schema = item_schema(schema_id)
        assert schema is not None  # encoded_records only finds records of one-array envelopes
        await self._client.insert_avro(self._table, self._rows.columns, self._rows.avro_select, schema,
                                       container_chunks(parts))

    async def _retrying(self, insert: Callable[[], Awaitable[Any]]) -> None:
        """Run ``insert`` until it succeeds or fails for good (``PermanentSinkError``), backing off."""
        await retrying(insert, retries=self._retries, log=log, what="ClickHouse insert")

    async def _insert_rows(self, records: list[Record], rows: list[tuple[object, ...]],
                           rejected: list[Rejected]) -> None:
        """Insert rows, retrying transient errors; split a refused batch to find the refused rows."""
        if not records:
            return
        try:
            await self._retrying(lambda: self._client.insert(self._table, self._rows.columns, rows))
        except PermanentSinkError as exc:
            if len(records) == 1:
                rejected.append(Rejected(records[0], str(exc)))
                return
            middle = len(records) // 2
            await self._insert_rows(records[:middle], rows[:middle], rejected)
            await self._insert_rows(records[middle:], rows[middle:], rejected)

    async def close(self) -> None:
        await self._client.aclose()
