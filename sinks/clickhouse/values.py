"""Row values for a column's own type, where ClickHouse does not parse our JSON rows itself.

``rows`` builds JSON-compatible rows for current ClickHouse, which parses them server-side:
times as ``"seconds.micros"`` text, booleans as JSON booleans, ``null`` for a missing time in a
column that is not Nullable (its default, ``input_format_null_as_default``). Two ways in take
values typed by the client instead:

- the native protocol (clickhouse-driver sends columns in binary, typed in Python);
- a legacy server's ``JSONEachRow`` (18.16 reads neither ``"seconds.micros"`` nor ``null`` there).

``converter(type)`` maps one such value to what both take: ``DateTime`` → whole seconds,
``DateTime64(p)`` → an integer in units of 10^-p s (clickhouse-driver takes those as they are),
booleans → 0 or 1, ``None`` in a column that is not Nullable → the type's default. Other values
pass unchanged, and the driver or the server refuses what does not fit (a refused record).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

Convert = Callable[[object], object]

_WRAPPED = re.compile(r"^(Nullable|LowCardinality)\((.*)\)$")
_DATETIME64 = re.compile(r"^DateTime64\((\d+)")
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def _same(value: object) -> object:
    return value


def _time(scale: int) -> Convert:
    """``"seconds.micros"`` (or whole seconds) → an integer count of 10^-scale seconds."""
    def convert(value: object) -> object:
        if isinstance(value, str):
            seconds, _, fraction = value.partition(".")
            return int(seconds) * 10 ** scale + int((fraction + "000000")[:scale] or 0)
        if isinstance(value, int):
            return value * 10 ** scale
        return value
    return convert


def _number(value: object) -> object:
    return int(value) if isinstance(value, bool) else value


@cache
def converter(clickhouse_type: str) -> Convert:
    """What a value of a column of ``clickhouse_type`` becomes (see the module docstring)."""
    nullable = False
    base = clickhouse_type.strip()
    while found := _WRAPPED.match(base):
        nullable = nullable or found[1] == "Nullable"
        base = found[2].strip()
    name = base.split("(", 1)[0]
    default: object = None
    convert: Convert = _same
    if found64 := _DATETIME64.match(base):
        convert, default = _time(int(found64[1])), 0
    elif name == "DateTime":
        convert, default = _time(0), 0
    elif name == "Bool" or re.fullmatch(r"U?Int\d+", name):
        convert, default = _number, 0
    elif name.startswith("Float"):
        default = 0.0
    elif name in {"String", "FixedString"}:
        default = ""
    elif name == "UUID":
        default = _ZERO_UUID
    if nullable or default is None:
        return convert
    inner = convert

    def or_default(value: object) -> object:
        return default if value is None else inner(value)
    return or_default
