"""The contract every sink implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.events import ProcessedEvent


@dataclass(frozen=True)
class Rejected:
    """An event the destination refused for good, with its error."""

    event: ProcessedEvent
    error: str


@dataclass(frozen=True)
class FlushResult:
    written: int
    rejected: list[Rejected] = field(default_factory=list)


class Sink(Protocol):
    """Writes processed events to a destination, durably and idempotently by ``uuid``.

    The worker calls ``write`` with the events of a batch of Kafka messages, then ``flush``,
    and commits those messages' offsets only after ``flush`` returned. ``flush`` retries
    transient failures itself (the partition waits; nothing is lost) and returns the events
    the destination refused for good, which the worker dead-letters. Writing the same event
    twice must leave one row: redelivery after a crash is normal.
    """

    name: str

    def write(self, events: Sequence[ProcessedEvent]) -> None: ...

    async def flush(self) -> FlushResult: ...

    async def close(self) -> None: ...
