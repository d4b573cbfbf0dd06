"""``headwater query SQL``: one statement against ClickHouse, printed as a table, JSON, TSV or CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from headwater.cli.output import console, print_json, say, settings
from headwater.errors import ConfigError
from headwater.stack.endpoints import resolve_service
from sinks.clickhouse.client import QueryResult
from sinks.clickhouse.client import connect as clickhouse_connect
from sinks.errors import PermanentSinkError, RetriableSinkError


class Format(StrEnum):
    table = "table"
    json = "json"
    tsv = "tsv"
    csv = "csv"


def statements(sql: str) -> list[str]:
    """``sql`` split at the semicolons outside quotes and comments; empty statements left out."""
    parts: list[str] = []
    current: list[str] = []
    i, quote = 0, ""
    while i < len(sql):
        c = sql[i]
        if quote:
            current.append(c)
            if c == "\\" and i + 1 < len(sql):
                current.append(sql[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
            current.append(c)
        elif sql.startswith("--", i) or c == "#":
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 2
            current.append(" ")
            continue
        elif c == ";":
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _text(value: Any) -> str:
    """A value as one cell: text as it is, JSON for numbers, arrays and maps, and the plain text of the
    Python values the native protocol gives (a datetime, a UUID)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, int | float | list | tuple | dict):
        return json.dumps(value, default=str)
    return str(value)


def show(result: QueryResult, fmt: Format) -> None:
    """Print a result; values are never cut (people copy them)."""
    if fmt is Format.json:
        print_json([dict(zip(result.columns, row, strict=True)) for row in result.rows])
    elif fmt in (Format.tsv, Format.csv):
        out = io.StringIO()
        writer = csv.writer(out, delimiter="\t" if fmt is Format.tsv else ",", lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_text(v) for v in row] for row in result.rows)
        sys.stdout.write(out.getvalue())
    else:
        table = Table(*result.columns)
        for column in table.columns:
            column.overflow = "fold"
        for row in result.rows:
            table.add_row(*(_text(v) for v in row))
        console.print(table)


def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement (a trailing ; is fine).")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="How to print rows.")] = Format.table,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
) -> None:
    """Run one SQL statement against ClickHouse (embedded or server) and print what it returns."""
    found = statements(sql)
    if not found:
        raise ConfigError("no SQL statement given")
    if len(found) > 1:
        raise ConfigError(f"{len(found)} statements given; `headwater query` runs one at a time "
                          "(run it once per statement)")
    url = resolve_service(settings(), "clickhouse")

    async def run() -> QueryResult | None:
        client = clickhouse_connect(url)
        try:
            return await client.execute(found[0])
        finally:
            await client.aclose()

    try:
        result = asyncio.run(run())
    except PermanentSinkError as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        raise ConfigError(f"ClickHouse refused the statement: {first_line}") from None
    except RetriableSinkError as exc:
        raise ConfigError(f"ClickHouse did not answer: {exc}") from None
    if result is None:
        say("ok: the statement ran and returns no rows")
        return
    show(result, Format.json if as_json else fmt)
