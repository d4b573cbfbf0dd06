"""The contract every sink implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A record the destination refused for good, with its error."""

    record: Record
    error: str


@dataclass(frozen=True)
class FlushResult:
    written: int
    rejected: list[Rejected] = field(default_factory=list)


class Sink(Protocol):
    """Writes records (processed events, warnings) to a destination, durably and idempotently.

    The worker calls ``write`` with the records of a batch of Kafka messages, then ``flush``,
    and commits those messages' offsets only after ``flush`` returned. ``flush`` retries
    transient failures itself (the partition waits; nothing is lost) and returns the records
    the destination refused for good, which the worker dead-letters. Writing the same record
    twice must leave one row: redelivery after a crash is normal.
    """

    name: str

    def write(self, records: Sequence[Record]) -> None: ...

    async def flush(self) -> FlushResult: ...

    async def close(self) -> None: ...
