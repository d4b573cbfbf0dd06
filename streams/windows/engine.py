"""The event-time window engine: pure, no Kafka, no clock of its own.

A window ``[start, start + size)`` is opened by the first event inside it, keyed by the values
the topology names (``key_of``). Windows hop by ``step`` (tumbling when ``step == size``), so an
event belongs to ``size / step`` windows. Each source partition has its own ``PartitionWindows``
and event-time **watermark**: the newest event time it has seen. A window **closes** when the
watermark passes ``end + grace``, and is then emitted once and forgotten, so state holds only
open windows. An event whose every window has closed is **late**: counted, never added.

Faust's windowed tables close by wall clock, per partition only as events arrive, and lose
their expiry after recovery; this engine closes by event time, and an **idle** partition (no
event for ``idle`` seconds of wall time) moves its watermark on by the wall time that passed,
so it does not hold its windows open forever. The caller passes wall time in (``advance_idle``).

State is plain data (``to_state``/``from_state``), for the changelog topic that
``streams.windows.runner`` keeps it in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Function = Literal["count", "uniq", "sum", "min", "max"]
WindowKey = tuple[str, ...]

MICROS = 1_000_000


@dataclass(frozen=True)
class Aggregation:
    """One value a window computes: ``count`` of events, ``uniq`` values of a field, or the
    ``sum``/``min``/``max`` of a numeric field (non-numbers are skipped, and counted)."""

    name: str
    function: Function
    field: str | None = None  # a key path, like the window's key: ``distinct_id``, ``properties.price``


@dataclass(frozen=True)
class WindowShape:
    """Sizes in microseconds (event times are microseconds since the epoch)."""

    size: int
    step: int
    grace: int
    idle: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.step <= self.size or self.size % self.step:
            raise ValueError(f"a window's step ({self.step}) must divide its size ({self.size})")
        if self.grace < 0:
            raise ValueError("grace cannot be negative")

    def starts(self, timestamp: int) -> list[int]:
        """The starts of every window holding ``timestamp``, oldest first."""
        last = timestamp - timestamp % self.step
        return list(range(last - self.size + self.step, last + 1, self.step))

    def closes_at(self, start: int) -> int:
        """The watermark at which the window starting at ``start`` closes."""
        return start + self.size + self.grace


def key_of(record: Mapping[str, Any], paths: Sequence[str]) -> WindowKey:
    """The record's values at ``paths`` as strings: ``event``, ``team_id``, ``properties.$browser``
    (a missing value is the empty string)."""
    return tuple(_text(value_at(record, path)) for path in paths)


def value_at(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; only the first dot splits (``properties.$os.name`` is the property
    ``$os.name``)."""
    head, dot, rest = path.partition(".")
    value = record.get(head)
    if not dot:
        return value
    return value.get(rest) if isinstance(value, Mapping) else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Accumulator:
    """A window's running values."""

    count: int = 0
    uniq: dict[str, set[str]] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)
    skipped: int = 0  # values of sum/min/max fields that were not numbers

    def add(self, record: Mapping[str, Any], aggregations: Sequence[Aggregation]) -> None:
        self.count += 1
        for agg in aggregations:
            if agg.function == "count":
                continue
            value = value_at(record, agg.field or "")
            if agg.function == "uniq":
                if value is not None:
                    self.uniq.setdefault(agg.name, set()).add(_text(value))
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.skipped += 1
                continue
            held = self.numbers.get(agg.name)
            if held is None:
                self.numbers[agg.name] = float(value)
            elif agg.function == "sum":
                self.numbers[agg.name] = held + value
            elif agg.function == "min":
                self.numbers[agg.name] = min(held, float(value))
            else:
                self.numbers[agg.name] = max(held, float(value))

    def values(self, aggregations: Sequence[Aggregation]) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {}
        for agg in aggregations:
            if agg.function == "count":
                out[agg.name] = self.count
            elif agg.function == "uniq":
                out[agg.name] = len(self.uniq.get(agg.name, ()))
            else:
                out[agg.name] = self.numbers.get(agg.name, 0.0 if agg.function == "sum" else None)
        return out


@dataclass(frozen=True)
class Closed:
    """A window that closed: emitted once."""

    key: WindowKey
    start: int
    end: int
    values: dict[str, float | int | None]
    skipped: int


class PartitionWindows:
    """The open windows and the watermark of one source partition; see the module docstring."""

    def __init__(self, shape: WindowShape, aggregations: Sequence[Aggregation]) -> None:
        self.shape = shape
        self.aggregations = list(aggregations)
        self.watermark: int | None = None
        self.last_event_at: float | None = None  # wall time of the last event, for ``advance_idle``
        self.open: dict[tuple[WindowKey, int], Accumulator] = {}
        self.late = 0

    def add(self, key: WindowKey, timestamp: int, record: Mapping[str, Any], now: float) -> bool:
        """Add one event; False (and counted in ``late``) when every window holding it has closed."""
        self.last_event_at = now
        starts = self.shape.starts(timestamp)
        if self.watermark is not None:
            starts = [s for s in starts if self.shape.closes_at(s) > self.watermark]
        if not starts:
            self.late += 1
            return False
        for start in starts:
            self.open.setdefault((key, start), Accumulator()).add(record, self.aggregations)
        if self.watermark is None or timestamp > self.watermark:
            self.watermark = timestamp
        return True

    def advance_idle(self, now: float) -> None:
        """No event for ``shape.idle`` seconds: move the watermark on by the wall time that passed."""
        if self.shape.idle is None or self.last_event_at is None or self.watermark is None:
            return
        idle_for = now - self.last_event_at
        if idle_for * MICROS >= self.shape.idle:
            self.watermark += int(idle_for * MICROS)
            self.last_event_at = now

    def close(self) -> list[Closed]:
        """The windows the watermark has passed, oldest first; they are forgotten."""
        if self.watermark is None:
            return []
        ready = sorted((start, key) for key, start in self.open if self.shape.closes_at(start) <= self.watermark)
        closed = []
        for start, key in ready:
            acc = self.open.pop((key, start))
            closed.append(Closed(key, start, start + self.shape.size, acc.values(self.aggregations), acc.skipped))
        return closed

    def close_all(self) -> list[Closed]:
        """Every open window, as if the watermark had passed them all (the end of a test's input)."""
        if self.open:
            self.watermark = max(self.shape.closes_at(start) for _, start in self.open)
        return self.close()

    # -- state, for the changelog ---------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "watermark": self.watermark, "late": self.late,
            "open": [{"key": list(key), "start": start, "count": acc.count,
                      "uniq": {n: list(v) for n, v in acc.uniq.items()}, "numbers": acc.numbers,
                      "skipped": acc.skipped} for (key, start), acc in self.open.items()],
        }

    @classmethod
    def from_state(cls, shape: WindowShape, aggregations: Sequence[Aggregation],
                   state: Mapping[str, Any]) -> PartitionWindows:
        windows = cls(shape, aggregations)
        windows.watermark = state["watermark"]
        windows.late = state["late"]
        for item in state["open"]:
            windows.open[(tuple(item["key"]), item["start"])] = Accumulator(
                item["count"], {n: set(v) for n, v in item["uniq"].items()}, dict(item["numbers"]), item["skipped"])
        return windows


def feed(windows: PartitionWindows, records: Iterable[Mapping[str, Any]], paths: Sequence[str],
         now: float, timestamp_field: str = "timestamp") -> list[Closed]:
    """Add ``records`` in order, then close what the watermark passed: one batch's work."""
    for record in records:
        windows.add(key_of(record, paths), int(record[timestamp_field]), record, now)
    return windows.close()
