"""A declared window in the worker: events re-keyed by the window's key, then aggregated once per key.

Two steps, each with a consumer group of its own, as Kafka Streams does for a ``groupBy``:

1. **re-key** (``Rekeyer``, group ``<app_id>-window_<name>-rekey``) reads the source topic's
   envelopes and makes, for each event, a small JSON record (its time, key values, the fields
   the aggregations read, its uuid and where it came from); it sends them to the window's
   repartition topic, to the partition of their window key, as one JSON array per partition and
   batch (a Kafka message per event would cost more than the window itself). Every event of one
   key then lands in one partition, so a window is computed whole by one worker instead of in
   pieces by every partition of the source.
2. **aggregate** (``Aggregator``, group ``<app_id>-window_<name>``) feeds each repartition
   partition's records to its ``engine.PartitionWindows`` and sends the windows that closed to
   the output topic (``window_results`` Avro envelopes, one window each, keyed
   ``<name>:<key>:<start>``), with the partition's state to the
   compacted changelog (``<app_id>-window-<name>-changelog``, one message per partition).

Exactly once, without Kafka transactions: a batch's messages are all acknowledged before its
offsets are committed, so a crash replays a batch and re-keying may send a record twice. The
state each changelog message holds includes, per source partition, the position (offset, index)
of the last record applied; a record at or before it is a replay and is skipped. The re-keyer
sends one source partition's records in order, so positions only grow. A window restored from
the changelog therefore counts each event once, and closes, and is emitted, at the same point
of the data. A window may be *sent* twice (a crash between the output's ack and the changelog's):
with the same key and the same values, which a table keyed by it (ClickHouse's
ReplacingMergeTree) keeps once.

The I/O is behind ``WindowIO`` (Kafka in ``streams.windows.kafka``; lists in unit tests).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from headwater.runtime.topology import WindowSpec
from schemas.serializer import decode_envelope, encode_envelope
from streams import telemetry
from streams.errors import WindowError
from streams.windows.engine import (
    MICROS,
    Aggregation,
    Closed,
    PartitionWindows,
    WindowKey,
    WindowShape,
    key_of,
    value_at,
)

REKEYED_PER_MESSAGE = 2_000
"""Re-keyed records per repartition message (~150 bytes each)."""

Position = tuple[int, int]  # a record's source offset and index in its envelope


@dataclass(frozen=True)
class Message:
    """A message read from Kafka."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Out:
    """A message to send; ``partition`` None lets the key choose."""

    topic: str
    key: bytes
    value: bytes
    partition: int | None = None


class WindowIO(Protocol):
    """One step's consumer and producer."""

    async def fetch(self, timeout: float) -> list[Message]:
        """The next messages of the step's source (waits up to ``timeout`` seconds; may return none)."""
        ...

    def assigned(self) -> set[int]:
        """The source partitions this worker holds now."""
        ...

    async def send(self, messages: Sequence[Out]) -> None:
        """Send ``messages`` and wait until Kafka acknowledged every one."""
        ...

    async def commit(self, offsets: Mapping[int, int]) -> None:
        """Commit the next offset to read, per source partition."""
        ...


class ChangelogReader(Protocol):
    async def last(self, partition: int) -> bytes | None:
        """The newest changelog message of ``partition``, or None when it has none."""
        ...


def shape_of(spec: WindowSpec) -> WindowShape:
    idle = spec.idle_seconds * MICROS if spec.idle_seconds is not None else None
    return WindowShape(spec.size_seconds * MICROS, spec.step * MICROS, spec.grace_seconds * MICROS, idle)


def aggregations_of(spec: WindowSpec) -> list[Aggregation]:
    return [Aggregation(a.name, a.function, a.field) for a in spec.aggregations]


def _needs_parsing(paths: Iterable[str]) -> set[str]:
    """The JSON-text fields of a record (``properties``, ``person_properties``) the paths look into."""
    return {p.partition(".")[0] for p in paths if "." in p} & {"properties", "person_properties"}


def _readable(record: Mapping[str, Any], parse: set[str]) -> Mapping[str, Any]:
    if not parse:
        return record
    out = dict(record)
    for name in parse:
        text = out.get(name)
        if isinstance(text, str | bytes):
            try:
                out[name] = orjson.loads(text)
            except orjson.JSONDecodeError:
                out[name] = {}
    return out


def nested(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``{"properties.price": 3}`` back into ``{"properties": {"price": 3}}``, for ``engine.value_at``."""
    out: dict[str, Any] = {}
    for path, value in fields.items():
        head, dot, rest = path.partition(".")
        if dot:
            out.setdefault(head, {})[rest] = value
        else:
            out[head] = value
    return out


class WindowInput:
    """What a window reads of an event record: its key, its time, the fields its aggregations read."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.fields = sorted({a.field for a in spec.aggregations if a.field})
        self._parse = _needs_parsing([*spec.key, *self.fields])

    def of(self, record: Mapping[str, Any]) -> tuple[WindowKey, int, dict[str, Any]]:
        """``(key, timestamp, {field path: value})``; ``nested`` turns the fields back into a record."""
        readable = _readable(record, self._parse)
        fields = {f: value_at(readable, f) for f in self.fields}
        return key_of(readable, self.spec.key), int(record["timestamp"]), fields


class Rekeyer:
    """Step 1: the source's events as small records keyed by the window key; see the module docstring."""

    def __init__(self, spec: WindowSpec, app_id: str, io: WindowIO, partitions: int) -> None:
        self.spec = spec
        self._io = io
        self._topic = spec.repartition(app_id)
        self._partitions = partitions  # of the repartition topic
        self._input = WindowInput(spec)

    def partition_of(self, key: WindowKey) -> int:
        """The repartition partition of a window key (any stable hash: only the aggregator reads it)."""
        return zlib.crc32("\x1f".join(key).encode()) % self._partitions

    def rekey(self, message: Message) -> dict[int, list[bytes]]:
        """One source envelope's events as repartition records (JSON), by target partition;
        ``WindowError`` if it holds no events."""
        try:
            subject, records = decode_envelope(message.value)
        except Exception as exc:  # any decoding failure is the same problem
            raise WindowError(f"window {self.spec.name}: an envelope of {self.spec.source} at offset "
                              f"{message.offset} cannot be decoded: {exc}") from exc
        if subject not in ("processed_envelope", "raw_envelope"):
            raise WindowError(f"window {self.spec.name}: {self.spec.source} holds {subject} envelopes, not events")
        out: dict[int, list[bytes]] = {}
        for index, record in enumerate(records):
            key, timestamp, fields = self._input.of(record)
            value = {"t": timestamp, "k": list(key), "u": record.get("uuid"), "f": fields,
                     "o": [message.partition, message.offset, index]}
            out.setdefault(self.partition_of(key), []).append(orjson.dumps(value))
        return out

    async def step(self, timeout: float = 1.0) -> int:
        """Re-key one fetch: one message per repartition partition (a JSON array of records), not one
        per event; how many source envelopes it handled."""
        messages = await self._io.fetch(timeout)
        if not messages:
            return 0
        by_partition: dict[int, list[bytes]] = {}
        offsets: dict[int, int] = {}
        for message in messages:
            for partition, records in self.rekey(message).items():
                by_partition.setdefault(partition, []).extend(records)
            offsets[message.partition] = message.offset + 1
        out = []
        for partition, records in sorted(by_partition.items()):
            for start in range(0, len(records), REKEYED_PER_MESSAGE):
                value = b"[" + b",".join(records[start:start + REKEYED_PER_MESSAGE]) + b"]"
                out.append(Out(self._topic, b"", value, partition))
        await self._io.send(out)
        await self._io.commit(offsets)
        return len(messages)


@dataclass
class _Partition:
    windows: PartitionWindows
    applied: dict[int, Position] = field(default_factory=dict)  # source partition -> last position applied


class Aggregator:
    """Step 2: windows per repartition partition, emitted once when they close; see the module docstring."""

    def __init__(self, spec: WindowSpec, app_id: str, io: WindowIO, changelog: ChangelogReader,
                 clock: Any = time.time) -> None:
        self.spec = spec
        self._io = io
        self._changelog = changelog
        self._changelog_topic = spec.changelog(app_id)
        self._clock = clock
        self._shape = shape_of(spec)
        self._aggregations = aggregations_of(spec)
        self._partitions: dict[int, _Partition] = {}
        self._late = telemetry.WINDOW_LATE_EVENTS.labels(spec.name)
        self._emitted = telemetry.WINDOWS_EMITTED.labels(spec.name)
        self._replayed = telemetry.WINDOW_RECORDS_REPLAYED.labels(spec.name)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the state of partitions this worker lost: if they come back, the changelog has them."""
        for partition in partitions:
            self._partitions.pop(partition, None)

    async def _partition(self, partition: int) -> _Partition:
        held = self._partitions.get(partition)
        if held is None:
            state = await self._changelog.last(partition)
            if state is None:
                held = _Partition(PartitionWindows(self._shape, self._aggregations))
            else:
                doc = orjson.loads(state)
                held = _Partition(PartitionWindows.from_state(self._shape, self._aggregations, doc["windows"]),
                                  {int(p): (o, i) for p, (o, i) in doc["applied"].items()})
            self._partitions[partition] = held
        return held

    async def step(self, timeout: float = 1.0) -> int:
        """Aggregate one fetch, close what the watermarks passed (idle partitions too); records applied."""
        messages = await self._io.fetch(timeout)
        now = self._clock()
        assigned = self._io.assigned()
        for gone in set(self._partitions) - assigned:  # moved to another worker: it restores them
            del self._partitions[gone]
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        out: list[Out] = []  # closed windows and late events: acknowledged before any state says they were sent
        states: list[Out] = []
        offsets: dict[int, int] = {}
        applied = 0
        for partition in sorted(set(by_partition) | (assigned & set(self._partitions))):
            held = await self._partition(partition)
            changed = False
            for message in by_partition.get(partition, []):
                applied += self._apply(held, message, now, out)
                offsets[partition] = message.offset + 1
                changed = True
            held.windows.advance_idle(now)
            closed = held.windows.close()
            if closed or changed:
                out += [self._result(c, now) for c in closed]
                self._emitted.inc(len(closed))
                state = {"windows": held.windows.to_state(),
                         "applied": {str(p): list(pos) for p, pos in held.applied.items()}}
                states.append(Out(self._changelog_topic, str(partition).encode(), orjson.dumps(state), partition))
        if out:
            await self._io.send(out)
        if states:
            await self._io.send(states)
        if offsets:
            await self._io.commit(offsets)
        return applied

    def _apply(self, held: _Partition, message: Message, now: float, out: list[Out]) -> int:
        """Add a message's re-keyed records; how many were counted (not replayed, not late)."""
        counted = 0
        for record in orjson.loads(message.value):
            source, offset, index = record["o"]
            position = (offset, index)
            if position <= held.applied.get(source, (-1, -1)):
                self._replayed.inc()
                continue
            held.applied[source] = position
            if held.windows.add(tuple(record["k"]), record["t"], nested(record["f"]), now):
                counted += 1
                continue
            self._late.inc()
            if self.spec.late_topic is not None:
                out.append(Out(self.spec.late_topic, (record.get("u") or "").encode(), orjson.dumps(record)))
        return counted

    def _result(self, closed: Closed, now: float) -> Out:
        """A ``window_results`` envelope of one window (``schemas/avro/window_results.v1.avsc``)."""
        key = dict(zip(self.spec.key, closed.key, strict=True))
        record = {"window": self.spec.name, "key": orjson.dumps(key).decode(), "start": closed.start,
                  "end": closed.end, "values": orjson.dumps(closed.values).decode(), "skipped": closed.skipped,
                  "emitted_at": int(now * MICROS)}
        name = f"{self.spec.name}:{'|'.join(closed.key)}:{closed.start}"
        return Out(self.spec.output, name.encode(), encode_envelope("window_results", [record]))
