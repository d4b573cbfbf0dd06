"""Envelopes: one Kafka message carries the events of one request that share a partition.

Faust spends ~100 µs per Kafka *message*, so topics carry envelopes (docs/differences.md).
Events are routed by their key ``token:distinct_id`` with Kafka's partitioner, kept in order,
and split when an envelope would pass ``max_bytes``. An envelope's Kafka key is the shared
event key when all its events have one, and empty otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from schemas.partitioner import partition_for

E = TypeVar("E")

DEFAULT_MAX_BYTES = 900_000  # below the broker's message.max.bytes (1 MB by default)

COUNT_HEADER = "count"
"""The Kafka header every envelope carries: how many events (records) it holds, in decimal."""


def header_count(headers: Mapping[str, bytes] | None) -> int | None:
    """The ``count`` header of a message's headers, or None if it has none (or a malformed one)."""
    count = headers.get(COUNT_HEADER) if headers else None
    return int(count) if count and count.isdigit() else None


def count_header(records: int) -> tuple[str, bytes]:
    """The ``count`` header of an envelope of ``records`` events."""
    return COUNT_HEADER, str(records).encode()


CAPTURED_HEADER = "captured_at"
"""The Kafka header of an envelope the pipeline derived from captured events: when the oldest of
them was captured (the Kafka timestamp the gateway's envelope got), in milliseconds since the
epoch. A sink measures end-to-end latency and freshness from it without decoding the records."""


def captured_header(seconds: float) -> tuple[str, bytes]:
    """The ``captured_at`` header for events captured at ``seconds`` (since the epoch)."""
    return CAPTURED_HEADER, str(int(seconds * 1000)).encode()


def header_captured(headers: Mapping[str, bytes] | None) -> float | None:
    """The ``captured_at`` header of a message's headers, in seconds; None if it has none (or a malformed one)."""
    millis = headers.get(CAPTURED_HEADER) if headers else None
    return int(millis) / 1000 if millis and millis.isdigit() else None


@dataclass
class Envelope(Generic[E]):
    """Events bound for one partition, in order."""

    partition: int
    events: list[E] = field(default_factory=list)
    keys: set[bytes] = field(default_factory=set)
    size: int = 0

    @property
    def key(self) -> bytes | None:
        """The Kafka key: the one event key all events share, else none."""
        return next(iter(self.keys)) if len(self.keys) == 1 else None


def pack(
    events: Iterable[E],
    *,
    key_of: Callable[[E], bytes],
    size_of: Callable[[E], int],
    partitions: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Envelope[E]]:
    """Group ``events`` into envelopes per partition, order kept, none above ``max_bytes``."""
    open_: dict[int, Envelope[E]] = {}
    done: list[Envelope[E]] = []
    for event in events:
        key = key_of(event)
        partition = partition_for(key, partitions)
        size = size_of(event)
        envelope = open_.get(partition)
        if envelope is not None and envelope.events and envelope.size + size > max_bytes:
            done.append(envelope)
            envelope = None
        if envelope is None:
            envelope = open_[partition] = Envelope(partition)
        envelope.events.append(event)
        envelope.keys.add(key)
        envelope.size += size
    done.extend(open_.values())
    return done


def event_key(token: str, distinct_id: str) -> bytes:
    """The partitioning key of an event: ``token:distinct_id``."""
    return f"{token}:{distinct_id}".encode()
