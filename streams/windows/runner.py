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
   ``<name>:<key>:<start>``). Every ``CHECKPOINT_SECONDS`` it writes each changed partition's
   state to the compacted changelog (``<app_id>-window-<name>-changelog``; ``Aggregator.checkpoint``
   says how a large state is cut into chunks) and then commits the offsets it read.

Exactly once, without Kafka transactions: a batch's messages are all acknowledged before its
offsets are committed, so a crash replays a batch and re-keying may send a record twice. The
state each checkpoint holds includes, per source partition, the position (offset, index) of the
last record applied; a record at or before it is a replay and is skipped. The re-keyer
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

REKEYED_BYTES = 256 * 1024
"""The most re-keyed records (JSON, ~150 bytes each) one repartition message holds, in bytes
(Kafka refuses messages over 1 MB by default)."""
CHECKPOINT_SECONDS = 1.0
"""How often the aggregator writes its state and commits (Kafka Streams' ``commit.interval.ms``):
writing it on every fetch would cost more than the windows themselves. The interval stretches
with the state: ``CHECKPOINT_SECONDS`` per ``CHECKPOINT_BYTES`` the last checkpoint wrote, up to
``MAX_CHECKPOINT_SECONDS``, so writing state costs about the same whatever its size (a 6 MB state,
~65 ms of CPU to write, is written every 6 s); a crash replays at most that much."""
CHECKPOINT_BYTES = 1024 * 1024
MAX_CHECKPOINT_SECONDS = 30.0
CHUNK_BYTES = 512 * 1024
"""The most state one changelog message holds; a larger checkpoint is cut into chunks."""

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

    async def send(self, messages: Sequence[Out]) -> list[int]:
        """Send ``messages``, wait until Kafka acknowledged every one; the offset each was written at."""
        ...

    async def commit(self, offsets: Mapping[int, int]) -> None:
        """Commit the next offset to read, per source partition."""
        ...


@dataclass(frozen=True)
class Stored:
    """A changelog message and where it is."""

    offset: int
    key: bytes
    value: bytes


class ChangelogReader(Protocol):
    """Reads one changelog partition."""

    async def last(self, partition: int) -> Stored | None:
        """The newest message of ``partition``, or None when it has none."""
        ...

    async def at(self, partition: int, offset: int) -> Stored | None:
        """The message at ``offset``, or None when compaction removed it."""
        ...

    async def many(self, partition: int, offsets: Sequence[int]) -> list[bytes]:
        """The values at ``offsets`` (ascending), in order; ``WindowError`` if one is gone."""
        ...


def _manifest_key(partition: int) -> bytes:
    return str(partition).encode()


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


Rekeyed = list[Any]
"""A re-keyed record: ``[time, key values, uuid, {field path: value}, source, offset, index]``; the
source is the partition (or ``topic:partition``) it was read from, offset and index its position."""


class Repartitioner:
    """A window's re-keyed records, by repartition partition, as repartition messages."""

    def __init__(self, spec: WindowSpec, app_id: str, partitions: int) -> None:
        self.spec = spec
        self.topic = spec.repartition(app_id)
        self._partitions = partitions  # of the repartition topic
        self._input = WindowInput(spec)

    def partition_of(self, key: WindowKey) -> int:
        """The repartition partition of a window key (any stable hash: only the aggregator reads it)."""
        return zlib.crc32("\x1f".join(key).encode()) % self._partitions

    def add(self, into: dict[int, list[Rekeyed]], record: Mapping[str, Any], source: str, offset: int,
            index: int) -> None:
        """Re-key one event record into ``into`` (by repartition partition)."""
        key, timestamp, fields = self._input.of(record)
        into.setdefault(self.partition_of(key), []).append(
            [timestamp, key, record.get("uuid"), fields, source, offset, index])

    def messages(self, by_partition: Mapping[int, list[Rekeyed]]) -> list[Out]:
        """One message per partition (a JSON array of records), cut where it would pass ``REKEYED_BYTES``."""
        out: list[Out] = []
        for partition, records in sorted(by_partition.items()):
            out += [Out(self.topic, b"", value, partition) for value in _json_arrays(records)]
        return out


def _json_arrays(records: list[Rekeyed]) -> list[bytes]:
    value = orjson.dumps(records)
    if len(value) <= REKEYED_BYTES or len(records) == 1:
        return [value]
    half = len(records) // 2
    return _json_arrays(records[:half]) + _json_arrays(records[half:])


class Rekeyer:
    """Step 1: the source's events as small records keyed by the window key; see the module docstring."""

    def __init__(self, spec: WindowSpec, app_id: str, io: WindowIO, partitions: int) -> None:
        self.spec = spec
        self._io = io
        self.repartitioner = Repartitioner(spec, app_id, partitions)

    def rekey(self, message: Message, into: dict[int, list[Rekeyed]]) -> None:
        """One source envelope's events into ``into``; ``WindowError`` if it holds no events."""
        try:
            subject, records = decode_envelope(message.value)
        except Exception as exc:  # any decoding failure is the same problem
            raise WindowError(f"window {self.spec.name}: an envelope of {self.spec.source} at offset "
                              f"{message.offset} cannot be decoded: {exc}") from exc
        if subject not in ("processed_envelope", "raw_envelope"):
            raise WindowError(f"window {self.spec.name}: {self.spec.source} holds {subject} envelopes, not events")
        source = str(message.partition)
        for index, record in enumerate(records):
            self.repartitioner.add(into, record, source, message.offset, index)

    async def step(self, timeout: float = 1.0) -> int:
        """Re-key one fetch: one message per repartition partition, not one per event; how many source
        envelopes it handled."""
        messages = await self._io.fetch(timeout)
        if not messages:
            return 0
        by_partition: dict[int, list[Rekeyed]] = {}
        offsets: dict[int, int] = {}
        for message in messages:
            self.rekey(message, by_partition)
            offsets[message.partition] = message.offset + 1
        await self._io.send(self.repartitioner.messages(by_partition))
        await self._io.commit(offsets)
        return len(messages)


@dataclass
class _Partition:
    windows: PartitionWindows
    applied: dict[str, Position] = field(default_factory=dict)  # source -> the last position applied
    manifest: int | None = None  # the changelog offset of the checkpoint in force
    slot: int = 0  # the chunk slot that checkpoint's chunks are in
    next_offset: int | None = None  # the next repartition offset to read, since the checkpoint in force
    dirty: bool = False  # changed since the checkpoint in force


class Aggregator:
    """Step 2: windows per repartition partition, emitted once when they close; see the module docstring."""

    def __init__(self, spec: WindowSpec, app_id: str, io: WindowIO, changelog: ChangelogReader,
                 clock: Any = time.time, checkpoint_seconds: float = CHECKPOINT_SECONDS) -> None:
        self.spec = spec
        self._io = io
        self._changelog = changelog
        self._changelog_topic = spec.changelog(app_id)
        self._clock = clock
        self._checkpoint_seconds = checkpoint_seconds
        self._interval = checkpoint_seconds
        self._checkpointed = clock()
        self._shape = shape_of(spec)
        self._aggregations = aggregations_of(spec)
        self._partitions: dict[int, _Partition] = {}
        self._late = telemetry.WINDOW_LATE_EVENTS.labels(spec.name)
        self._emitted = telemetry.WINDOWS_EMITTED.labels(spec.name)
        self._replayed = telemetry.WINDOW_RECORDS_REPLAYED.labels(spec.name)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the state of partitions this worker lost: their new owner restores the last checkpoint
        and reads on from its offsets."""
        for partition in partitions:
            self._partitions.pop(partition, None)

    async def _partition(self, partition: int) -> _Partition:
        held = self._partitions.get(partition)
        if held is None:
            held = await self._restore(partition)
            self._partitions[partition] = held
        return held

    async def _restore(self, partition: int) -> _Partition:
        """The partition's last complete checkpoint (``checkpoint``), or empty windows."""
        newest = await self._changelog.last(partition)
        if newest is not None and newest.key != _manifest_key(partition):  # a checkpoint died writing chunks
            after = int.from_bytes(newest.value[:8], "big", signed=True)
            newest = await self._changelog.at(partition, after) if after >= 0 else None
        if newest is None:
            return _Partition(PartitionWindows(self._shape, self._aggregations))
        manifest = orjson.loads(newest.value)
        if manifest["chunks"]:
            parts = await self._changelog.many(partition, manifest["chunks"])
            doc = orjson.loads(b"".join(part[8:] for part in parts))
        else:
            doc = manifest["state"]
        return _Partition(PartitionWindows.from_state(self._shape, self._aggregations, doc["windows"]),
                          {source: (o, i) for source, (o, i) in doc["applied"].items()},
                          manifest=newest.offset, slot=manifest["slot"])

    async def step(self, timeout: float = 1.0) -> int:
        """Aggregate one fetch, close what the watermarks passed (idle partitions too), and send the
        windows that closed; checkpoint when one is due. Records applied."""
        messages = await self._io.fetch(timeout)
        now = self._clock()
        assigned = self._io.assigned()
        for gone in set(self._partitions) - assigned:  # moved to another worker: it restores them
            del self._partitions[gone]
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(message.partition, []).append(message)
        out: list[Out] = []  # closed windows and late events
        applied = 0
        for partition in sorted(set(by_partition) | (assigned & set(self._partitions))):
            held = await self._partition(partition)
            for message in by_partition.get(partition, []):
                applied += self._apply(held, message, now, out)
                held.next_offset = message.offset + 1
                held.dirty = True
            held.windows.advance_idle(now)
            closed = held.windows.close()
            held.dirty = held.dirty or bool(closed)
            out += [self._result(c, now) for c in closed]
            self._emitted.inc(len(closed))
        if out:
            await self._io.send(out)
        if now - self._checkpointed >= self._interval:
            await self.checkpoint()
        return applied

    async def checkpoint(self) -> None:
        """Write the state of every partition read since the last checkpoint to the changelog, then
        commit their offsets.

        A checkpoint is a JSON document (the windows and the applied positions) in the partition's
        **manifest** message (key ``<partition>``), or, when it is larger than ``CHUNK_BYTES``, cut
        into **chunks** (keys ``<partition>:<slot>:<index>``; each value starts with the manifest
        in force's offset, 8 bytes) that are acknowledged before the manifest naming their offsets
        is sent. Chunks alternate between two slots, so the slot the manifest in force names is
        never overwritten: a crash while chunks are written leaves that manifest whole, and the
        newest message (a chunk) says where it is. The windows that closed were sent before (a
        crash re-sends them, with the same values)."""
        self._checkpointed = self._clock()
        due = {p: held for p, held in sorted(self._partitions.items()) if held.dirty}
        if not due:
            return
        documents = {p: orjson.dumps({"windows": held.windows.to_state(), "applied": held.applied})
                     for p, held in due.items()}
        size = sum(len(doc) for doc in documents.values())
        self._interval = min(MAX_CHECKPOINT_SECONDS, self._checkpoint_seconds * max(1.0, size / CHECKPOINT_BYTES))
        chunks: list[Out] = []
        for p, doc in documents.items():
            if len(doc) > CHUNK_BYTES:
                held = due[p]
                prefix = (held.manifest if held.manifest is not None else -1).to_bytes(8, "big", signed=True)
                slot = 1 - held.slot
                chunks += [Out(self._changelog_topic, f"{p}:{slot}:{i}".encode(),
                               prefix + doc[start:start + CHUNK_BYTES], p)
                           for i, start in enumerate(range(0, len(doc), CHUNK_BYTES))]
        written = iter(await self._io.send(chunks)) if chunks else iter(())
        manifests: list[Out] = []
        for p, doc in documents.items():
            held = due[p]
            if len(doc) > CHUNK_BYTES:
                held.slot = 1 - held.slot
                manifest = {"slot": held.slot, "chunks": [next(written) for _ in range(0, len(doc), CHUNK_BYTES)],
                            "state": None}
                manifests.append(Out(self._changelog_topic, _manifest_key(p), orjson.dumps(manifest), p))
            else:
                manifests.append(Out(self._changelog_topic, _manifest_key(p),
                                     b'{"slot":%d,"chunks":[],"state":' % held.slot + doc + b"}", p))
        for p, offset in zip(due, await self._io.send(manifests), strict=True):
            due[p].manifest = offset
        offsets = {p: held.next_offset for p, held in due.items() if held.next_offset is not None}
        if offsets:
            await self._io.commit(offsets)
        for held in due.values():
            held.next_offset, held.dirty = None, False

    def _apply(self, held: _Partition, message: Message, now: float, out: list[Out]) -> int:
        """Add a message's re-keyed records; how many were counted (not replayed, not late)."""
        counted = 0
        for timestamp, key, uuid, fields, source, offset, index in orjson.loads(message.value):
            position = (offset, index)
            if position <= held.applied.get(source, (-1, -1)):
                self._replayed.inc()
                continue
            held.applied[source] = position
            if held.windows.add(tuple(key), timestamp, nested(fields), now):
                counted += 1
                continue
            self._late.inc()
            if self.spec.late_topic is not None:
                late = {"uuid": uuid, "timestamp": timestamp, "key": dict(zip(self.spec.key, key, strict=True)),
                        "fields": fields}
                out.append(Out(self.spec.late_topic, (uuid or "").encode(), orjson.dumps(late)))
        return counted

    def _result(self, closed: Closed, now: float) -> Out:
        """A ``window_results`` envelope of one window (``schemas/avro/window_results.v1.avsc``)."""
        key = dict(zip(self.spec.key, closed.key, strict=True))
        record = {"window": self.spec.name, "key": orjson.dumps(key).decode(), "start": closed.start,
                  "end": closed.end, "values": orjson.dumps(closed.values).decode(), "skipped": closed.skipped,
                  "emitted_at": int(now * MICROS)}
        name = f"{self.spec.name}:{'|'.join(closed.key)}:{closed.start}"
        return Out(self.spec.output, name.encode(), encode_envelope("window_results", [record]))
