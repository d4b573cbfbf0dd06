"""The Avro way into ClickHouse: an ``INSERT … SELECT … FROM input(structure) FORMAT Avro``.

``structure`` is the record schema's fields as ClickHouse types; the ``SELECT`` maps them to
the table's columns (``RowFormat.avro_select``). A ClickHouse server streams the container
from the request body; the chDB owner (``headwater.stack.chdb_server``) reads it from a file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from sinks.errors import PermanentSinkError

_PRIMITIVES = {"string": "String", "long": "Int64", "int": "Int32", "boolean": "Bool", "double": "Float64",
               "float": "Float32", "bytes": "String"}


def _clickhouse_type(avro_type: Any) -> str:
    if isinstance(avro_type, str) and avro_type in _PRIMITIVES:
        return _PRIMITIVES[avro_type]
    if isinstance(avro_type, list) and len(avro_type) == 2 and "null" in avro_type:
        other = next(t for t in avro_type if t != "null")
        return f"Nullable({_clickhouse_type(other)})"
    raise PermanentSinkError(f"no ClickHouse type for the Avro type {avro_type!r}")


@cache
def structure(item_schema: str) -> str:
    """``name Type, …`` of a record schema's fields, for ClickHouse's ``input()``."""
    fields = json.loads(item_schema)["fields"]
    return ", ".join(f"`{f['name']}` {_clickhouse_type(f['type'])}" for f in fields)


def insert_query(table: str, columns: Sequence[str], select: Sequence[str], item_schema: str) -> str:
    names = ", ".join(f"`{c}`" for c in columns)
    # table, columns and select come from the topology and this package, never from records
    return (f"INSERT INTO {table} ({names}) SELECT {', '.join(select)} "  # noqa: S608
            f"FROM input('{structure(item_schema)}') FORMAT Avro")
