"""The files sink: each flush writes its records as files, one per project, date, window and source partition.

Layout, under ``directory``::

    <team_id>/<YYYY-MM-DD>/<HHMM>/<topic>-p<partition>-o<first offset>.jsonl.gz   (or .parquet)

The date and ``HHMM`` are those of the record's event-time bucket (``window_seconds``, UTC):
an event's ``timestamp``, a window result's ``start``. A file is named by the source partition
and the offset of the batch's first envelope from it, and written whole (``FileStore.put``):
a reader sees all of a file or none of it.

Redelivery writes the same names. A batch that was flushed but not committed (the worker died
in between) is read again from the same first offset, so its files are written again under the
same names; in case the second batch is shorter, the first flush for a partition after the
sink starts also removes the files of that partition from that offset on, which belong to the
uncommitted batch, and any temporary file a killed write left. So every record is in exactly
one file.

The topic itself may hold an event twice: when a worker dies between writing a batch's
processed events and committing it, the pipeline processes the batch again and writes its
events again, later on the same partition. The sink remembers the last ``dedupe_events``
uuids of each source partition (``recent``), reading them back from the partition's newest
files when it starts, and leaves a repeated uuid out (``headwater_sink_duplicates_skipped``).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from schemas.errors import SchemaError
from sinks import telemetry
from sinks.base import FlushResult, Health, Record, SourceEnvelope, SourcePosition, Unwritten
from sinks.errors import PermanentSinkError, RetriableSinkError
from sinks.files.config import FilesConfig
from sinks.files.recent import RecentIds
from sinks.files.store import FileStore
from sinks.filter import EventFilter
from sinks.retry import retrying

log = logging.getLogger("headwater.sinks.files")

MICROS = 1_000_000
T = TypeVar("T")

FileKey = tuple[str, str, str, str, int]  # team, date, window, topic, partition


class FilesSink:
    """A ``sinks.base.Sink`` writing files through a ``FileStore``; see the module docstring."""

    def __init__(self, name: str, store: FileStore, config: FilesConfig) -> None:
        self.name = name
        self._store = store
        self._config = config
        self._suffix = ".parquet" if config.format == "parquet" else ".jsonl.gz" if config.gzip else ".jsonl"
        self._pending: list[SourceEnvelope] = []
        self._cleaned: set[tuple[str, int]] = set()  # source partitions whose uncommitted files were removed
        self._swept = False
        self._unplaced = 0  # envelopes without a position (outside the worker): numbered in order
        # None: the filter takes every record, so flush does not ask it per record
        self._takes = None if config.filter == EventFilter() else config.filter.takes
        self._retries = telemetry.RETRIES.labels(name)
        self._duplicates = telemetry.DUPLICATES.labels(name)
        self._recent: dict[tuple[str, int], RecentIds] = {}  # per source partition (``recent``)
        if config.format == "parquet":
            _parquet()  # fails now, with what to install, rather than at the first flush

    async def start(self) -> None:
        await asyncio.to_thread(self._store.check)

    async def healthcheck(self) -> Health:
        try:
            await asyncio.to_thread(self._store.check)
        except (RetriableSinkError, PermanentSinkError) as exc:
            return Health(False, str(exc))
        return Health(True, f"{self._store.describe()} is writable")

    def write(self, envelopes: Sequence[SourceEnvelope]) -> None:
        self._pending.extend(envelopes)

    async def flush(self) -> FlushResult:
        envelopes, self._pending = self._pending, []
        placed = [(envelope, envelope.position or self._unplaced_position()) for envelope in envelopes]
        first: dict[tuple[str, int], int] = {}
        for _, position in placed:
            first.setdefault((position.topic, position.partition), position.offset)
        await self._retrying(lambda: self._forget_uncommitted(first))
        files: dict[tuple[str, int, str, int], list[Record]] = {}  # team, bucket, topic, partition
        unwritten: list[Unwritten] = []
        written = duplicates = 0
        width = self._config.window_seconds * MICROS
        takes = self._takes
        for envelope, position in placed:
            source = (position.topic, position.partition)
            try:
                records = envelope.records()
            except SchemaError as exc:
                unwritten.append(Unwritten(envelope, str(exc)))
                continue
            recent = self._recent.get(source)
            for record in records:  # per record only what decides its file: a call less, no names yet
                if takes is not None and not takes(record):
                    continue
                uuid = record.get("uuid")
                if recent is not None and uuid is not None and not recent.add(str(uuid)):
                    duplicates += 1
                    continue
                team, at = _team_and_time(record)
                files.setdefault((team, at - at % width, *source), []).append(record)
                written += 1
        if duplicates:
            self._duplicates.inc(duplicates)
        for (team, bucket, topic, partition), rows in files.items():
            path = self._path(self._file_key(team, bucket, topic, partition), first[(topic, partition)])
            data = self._encode(rows)
            await self._retrying(lambda p=path, d=data: self._store.put(p, d))  # type: ignore[misc]
        return FlushResult(written=written, unwritten=unwritten)

    async def close(self) -> None:
        return None

    # -- naming ---------------------------------------------------------------------------------

    def _unplaced_position(self) -> SourcePosition:
        self._unplaced += 1
        return SourcePosition("unplaced", 0, self._unplaced)

    def _file_key(self, team: str, bucket: int, topic: str, partition: int) -> FileKey:
        """A file's directories and source; ``bucket``: the start of its event-time bucket (µs)."""
        moment = datetime.fromtimestamp(bucket / MICROS, tz=UTC)
        return team, moment.strftime("%Y-%m-%d"), moment.strftime("%H%M"), topic, partition

    def _path(self, key: FileKey, first_offset: int) -> str:
        team, date, window, topic, partition = key
        return f"{team}/{date}/{window}/{topic}-p{partition}-o{first_offset:012d}{self._suffix}"

    def _forget_uncommitted(self, first: dict[tuple[str, int], int]) -> None:
        """See the module docstring: once per source partition (and once for temporary files); then
        the uuids of the partition's newest remaining files are read back (``recent``)."""
        fresh = {source: offset for source, offset in first.items() if source not in self._cleaned}
        if not self._swept:
            for name in self._store.names(".tmp"):
                if name.rsplit("/", 1)[-1].startswith("."):
                    self._store.delete(name)
            self._swept = True
        if not fresh:
            return
        kept: dict[tuple[str, int], list[tuple[int, str]]] = {}  # the files that stay, by source partition
        for name in self._store.names(self._suffix):
            parsed = _parse_name(name.rsplit("/", 1)[-1].removesuffix(self._suffix))
            if parsed is None:
                continue
            topic, partition, offset = parsed
            start = fresh.get((topic, partition))
            if start is None:
                continue
            if offset >= start:
                log.info("%s: removing %s, written by a batch that was not committed", self.name, name)
                self._store.delete(name)
            else:
                kept.setdefault((topic, partition), []).append((offset, name))
        for source in fresh:
            if self._config.dedupe_events:
                self._recent[source] = self._read_recent(sorted(kept.get(source, [])))
        self._cleaned |= set(fresh)

    def _read_recent(self, files: list[tuple[int, str]]) -> RecentIds:
        """The uuids of the newest ``files`` (offset, name; oldest first) up to ``dedupe_events``."""
        capacity = self._config.dedupe_events
        read: list[list[str]] = []
        total = 0
        for _, name in reversed(files):
            if total >= capacity:
                break
            uuids = self._uuids(self._store.get(name))
            read.append(uuids)
            total += len(uuids)
        recent = RecentIds(capacity)
        for uuids in reversed(read):
            recent.extend(uuids)
        return recent

    def _uuids(self, data: bytes) -> list[str]:
        """The uuids of a file this sink wrote (records without one, window results, have none)."""
        if self._config.format == "parquet":
            _, pq = _parquet()
            table = pq.read_table(io.BytesIO(data))
            return [str(u) for u in table.column("uuid").to_pylist()] if "uuid" in table.column_names else []
        lines = gzip.decompress(data) if self._config.gzip else data
        return [str(r["uuid"]) for line in lines.splitlines() if "uuid" in (r := orjson.loads(line))]

    # -- formats --------------------------------------------------------------------------------

    def _encode(self, records: Sequence[Record]) -> bytes:
        if self._config.format == "parquet":
            pa, pq = _parquet()
            buffer = io.BytesIO()
            rows = [r if type(r) is dict else dict(r) for r in records]  # decoded records are dicts: no copy
            pq.write_table(pa.Table.from_pylist(rows), buffer, compression="zstd")
            return buffer.getvalue()
        lines = b"".join(orjson.dumps(r) + b"\n" for r in records)
        return gzip.compress(lines, compresslevel=6, mtime=0) if self._config.gzip else lines

    # -- retries --------------------------------------------------------------------------------

    async def _retrying(self, call: Callable[[], T]) -> T:
        """Run the blocking ``call`` in a thread, retrying transient failures (``sinks.retry``)."""
        return await retrying(lambda: asyncio.to_thread(call), retries=self._retries, log=log,
                              what=f"{self.name}: writing to {self._store.describe()}")


def _team_and_time(record: Record) -> tuple[str, int]:
    """The project and event time of an event (``team_id``, ``timestamp``) or a window result (``start``)."""
    if "start" in record and "window" in record:
        key = record.get("key")
        fields: Any = orjson.loads(key) if isinstance(key, str) else {}
        team = fields.get("team_id", "all") if isinstance(fields, dict) else "all"
        return str(team), int(record["start"])
    return str(record.get("team_id", "unknown")), int(record.get("timestamp") or 0)


def _parse_name(stem: str) -> tuple[str, int, int] | None:
    """``<topic>-p<partition>-o<offset>`` back into its parts (None: not a name this sink wrote)."""
    head, _, offset = stem.rpartition("-o")
    topic, _, partition = head.rpartition("-p")
    if not (topic and partition.isdigit() and offset.isdigit()):
        return None
    return topic, int(partition), int(offset)


def _parquet() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise PermanentSinkError("format: parquet needs pyarrow: pip install 'headwater[parquet]'") from exc
    return pa, pq
