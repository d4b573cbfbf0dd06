"""ClickHouse clients: one protocol, two transports.

- ``chdb:///path`` — the embedded engine, reached over HTTP through the process that owns
  the path (``headwater.stack.chdb_server``, started by ``headwater up``);
- ``http://host:8123/db`` — a ClickHouse server's HTTP interface (same code path);
- ``clickhouse://host:9000/db`` — a server through clickhouse-driver's native protocol.

One row builder serves all of them (``rows``). Over HTTP, rows travel as JSONCompactEachRow to a
current server, and as JSONEachRow with values typed for each column (``values``) to a legacy one
(``server``: older than 22.1, e.g. 18.16); the native protocol sends them as blocks, typed the
same way. Avro goes over HTTP to a current server only. Each client asks ``SELECT version()``
once, and a table's column types (``DESCRIBE TABLE``) once, when it first needs them.

With ``cluster`` set (``HEADWATER_CLICKHOUSE_CLUSTER``), inserts carry
``insert_distributed_sync=1``: an insert into a Distributed table returns once every shard has
its rows, rather than when the node it went to has queued them, so a flush is durable when it
returns (the sink's at-least-once rests on that).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx
import orjson

from sinks.clickhouse import avro
from sinks.clickhouse.server import Server
from sinks.clickhouse.values import converter
from sinks.errors import PermanentSinkError, RetriableSinkError

INLINE_INSERT = re.compile(r"\s*INSERT\b(?:(?!\bSELECT\b).)*?\b(?:VALUES|FORMAT)\b", re.IGNORECASE | re.DOTALL)
"""An INSERT with its rows in the statement (``VALUES (…)``, ``FORMAT X <data>``), not ``INSERT … SELECT``."""
DISTRIBUTED_SYNC = {"insert_distributed_sync": "1"}
"""Settings of every insert in a cluster (see the module docstring)."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]


class ClickHouseClient(Protocol):
    """What the sink, migrations and ``headwater query`` need from ClickHouse."""

    async def server(self) -> Server:
        """The server's version, asked once: whether ``insert_avro`` works there, which table layout it takes."""
        ...

    async def command(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL)."""
        ...

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Insert ``rows`` (JSON-compatible values, in ``columns`` order) into ``table`` in one request."""
        ...

    async def insert_avro(self, table: str, columns: Sequence[str], select: Sequence[str], item_schema: str,
                          container: Sequence[bytes | memoryview]) -> None:
        """Insert the records of an Avro object container (given in pieces, sent as they are), mapped to
        ``columns`` by ``select`` (``avro.py``)."""
        ...

    async def select(self, sql: str) -> QueryResult: ...

    async def execute(self, sql: str) -> QueryResult | None:
        """Run any one statement: its result, or None for a statement without one (INSERT, ALTER, ...)."""
        ...

    async def aclose(self) -> None: ...


def _encode_rows(rows: Sequence[Sequence[object]]) -> bytes:
    return b"\n".join(orjson.dumps(row) for row in rows)


async def _chunks(pieces: Sequence[bytes | memoryview]) -> AsyncIterator[bytes]:
    """The pieces as one request body; small ones together, so the body goes out in few writes."""
    pending: list[bytes | memoryview] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


CHUNK_BYTES = 1 << 20


def _names(columns: Sequence[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def _insert_query(table: str, columns: Sequence[str], fmt: str = "JSONCompactEachRow") -> str:
    return f"INSERT INTO {table} ({_names(columns)}) FORMAT {fmt}"


class _ColumnTypes:
    """A table's column types, asked once per table (``DESCRIBE TABLE``)."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, str]] = {}

    async def typed(self, client: ClickHouseClient, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[object]]) -> list[tuple[object, ...]]:
        """``rows`` with each value converted for its column's type (``values.converter``)."""
        if table not in self._known:
            described = await client.select(f"DESCRIBE TABLE {table}")
            self._known[table] = {str(row[0]): str(row[1]) for row in described.rows}
        types = self._known[table]
        try:
            converters = [converter(types[c]) for c in columns]
        except KeyError as exc:
            raise PermanentSinkError(f"table {table} has no column {exc}") from exc
        typed = []
        for row in rows:
            try:
                typed.append(tuple(convert(v) for convert, v in zip(converters, row, strict=True)))
            except (ValueError, TypeError) as exc:
                raise PermanentSinkError(f"a value does not fit its column: {exc}") from exc
        return typed


class HttpClickHouse:
    """ClickHouse's HTTP interface: a server's, or the chDB owner's."""

    def __init__(self, base_url: str, database: str | None = None, timeout: float = 30.0,
                 cluster: str | None = None) -> None:
        params = {"database": database} if database else {}
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, params=params)
        self._insert_settings = DISTRIBUTED_SYNC if cluster else {}
        self._server: Server | None = None
        self._types = _ColumnTypes()

    async def server(self) -> Server:
        if self._server is None:
            self._server = Server(str((await self.select("SELECT version()")).rows[0][0]))
        return self._server

    async def _post(self, content: bytes | AsyncIterator[bytes], params: dict[str, str]) -> bytes:
        try:
            response = await self._http.post("/", content=content, params=params)
        except httpx.TransportError as exc:
            raise RetriableSinkError(f"ClickHouse at {self._http.base_url} is unreachable: {exc}") from exc
        if response.status_code >= 500 and "Code:" not in response.text:
            raise RetriableSinkError(f"ClickHouse answered {response.status_code}: {response.text[:500]}")
        if response.status_code != 200:
            raise PermanentSinkError(response.text.strip()[:2000])
        return response.content

    async def command(self, sql: str) -> None:
        await self._post(sql.encode(), {})

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        if not rows:
            return
        if not (await self.server()).legacy:
            await self._post(_encode_rows(rows), {"query": _insert_query(table, columns), **self._insert_settings})
            return
        # 18.16 has no JSONCompactEachRow, and parses neither "seconds.micros" nor null into a DateTime
        typed = await self._types.typed(self, table, columns, rows)
        body = b"\n".join(orjson.dumps(dict(zip(columns, row, strict=True))) for row in typed)
        await self._post(body, {"query": _insert_query(table, columns, "JSONEachRow"), **self._insert_settings})

    async def insert_avro(self, table: str, columns: Sequence[str], select: Sequence[str], item_schema: str,
                          container: Sequence[bytes | memoryview]) -> None:
        # streamed (chunked) in its pieces: no copy of the whole batch is made to send it
        await self._post(_chunks(container), {"query": avro.insert_query(table, columns, select, item_schema),
                                              **self._insert_settings})

    async def select(self, sql: str) -> QueryResult:
        result = await self.execute(sql)
        if result is None:
            raise PermanentSinkError("the statement returned no result (it is not a SELECT)")
        return result

    async def execute(self, sql: str) -> QueryResult | None:
        raw = await self._post(sql.encode(), {"default_format": "JSONCompact"})
        if not raw.strip():
            return None  # INSERT, ALTER, CREATE ... answer with an empty body
        doc = orjson.loads(raw)
        return QueryResult(
            columns=[m["name"] for m in doc["meta"]], types=[m["type"] for m in doc["meta"]], rows=doc["data"]
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _one_line(exc: Exception) -> str:
    """A driver error as ``Code: N. message``: clickhouse-driver puts the message on a second line, and an old
    server appends its stack trace to it."""
    code, message = getattr(exc, "code", None), str(getattr(exc, "message", "") or exc)
    message = " ".join(message.split("Stack trace:", 1)[0].split())
    return f"Code: {code}. {message}" if code is not None else message


class NativeClickHouse:
    """A ClickHouse server through clickhouse-driver (native protocol, port 9000).

    Rows go as the driver's typed blocks (``values``), never Avro. The driver's connection takes one
    query at a time, so its calls (each in a thread) take turns.
    """

    def __init__(self, url: str, cluster: str | None = None) -> None:
        from clickhouse_driver import Client

        self._client = Client.from_url(url)
        self._insert_settings = DISTRIBUTED_SYNC if cluster else {}
        self._turn = asyncio.Lock()
        self._server: Server | None = None
        self._types = _ColumnTypes()

    async def _run(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_driver import errors as ch_errors

        if not args and INLINE_INSERT.match(sql):
            # the server would wait for blocks the driver never sends (until its 300 s timeout)
            raise PermanentSinkError("over the native protocol an INSERT takes its rows as blocks, not in the SQL: "
                                     "use INSERT … SELECT, or an http:// URL for INSERT … VALUES / FORMAT")
        try:
            async with self._turn:
                return await asyncio.to_thread(self._client.execute, sql, *args, **kwargs)
        except (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, OSError) as exc:
            raise RetriableSinkError(f"ClickHouse is unreachable: {exc}") from exc
        except ch_errors.Error as exc:
            raise PermanentSinkError(_one_line(exc)) from exc
        except (ValueError, TypeError, OverflowError, struct.error) as exc:  # the driver typing a value
            raise PermanentSinkError(f"a value does not fit its column: {exc}") from exc

    async def server(self) -> Server:
        if self._server is None:
            self._server = Server(str((await self.select("SELECT version()")).rows[0][0]))
        return self._server

    async def command(self, sql: str) -> None:
        await self._run(sql)

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        if rows:
            typed = await self._types.typed(self, table, columns, rows)
            await self._run(f"INSERT INTO {table} ({_names(columns)}) VALUES", typed,
                            settings=self._insert_settings)

    async def insert_avro(self, table: str, columns: Sequence[str], select: Sequence[str], item_schema: str,
                          container: Sequence[bytes | memoryview]) -> None:
        raise PermanentSinkError("the native protocol client sends no Avro: insert rows")

    async def select(self, sql: str) -> QueryResult:
        rows, meta = await self._run(sql, with_column_types=True)
        return QueryResult(columns=[m[0] for m in meta], types=[m[1] for m in meta], rows=[list(r) for r in rows])

    async def execute(self, sql: str) -> QueryResult | None:
        result = await self.select(sql)
        return result if result.columns else None

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.disconnect)


def chdb_owner_url(path: Path) -> str:
    """The HTTP address of the process that owns the chDB data at ``path``."""
    owner = path.with_name(path.name + ".owner.json")
    if owner.exists():
        info = json.loads(owner.read_text())
        try:
            os.kill(int(info["pid"]), 0)
        except (ProcessLookupError, PermissionError):
            pass
        else:
            return f"http://127.0.0.1:{info['port']}"
    raise RetriableSinkError(
        f"embedded ClickHouse at {path} is not being served: run `headwater up` "
        "(one process owns a chDB path and answers for the others)"
    )


def connect(url: str, cluster: str | None = None) -> ClickHouseClient:
    """A client for ``HEADWATER_CLICKHOUSE_URL``; ``cluster`` (``HEADWATER_CLICKHOUSE_CLUSTER``) makes its
    inserts wait for every shard."""
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        return HttpClickHouse(chdb_owner_url(Path(parsed.path)))
    if parsed.scheme in {"http", "https"}:
        database = parsed.path.strip("/") or None
        return HttpClickHouse(f"{parsed.scheme}://{parsed.netloc}", database=database, cluster=cluster)
    if parsed.scheme == "clickhouse":
        return NativeClickHouse(url, cluster=cluster)
    raise PermanentSinkError(
        f"unsupported ClickHouse URL {url!r}: use chdb:///path, http://host:8123/db or clickhouse://host:9000/db"
    )
