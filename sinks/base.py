"""The contract every sink implements, and what a sink agent needs from the batch it works on.

The worker (``streams``) drives any registered sink the same way, through ``sinks.agent``:

1. ``write(records)`` with the records of each Kafka message of a batch (no I/O expected);
2. ``flush()`` once per batch, from the batch's checkpoint, before any producer ack is awaited;
3. the batch's offsets are committed only after ``flush`` returned and the dead letters of the
   records it rejected were acknowledged.

So a sink never acknowledges anything itself: returning from ``flush`` is its acknowledgement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    """What one ``flush`` made durable, and what the destination refused for good."""

    written: int
    rejected: list[Rejected] = field(default_factory=list)


class Sink(Protocol):
    """Writes records (processed events, warnings) to a destination, durably and idempotently.

    Called by ``sinks.agent.SinkAgent`` on the worker's event loop, one batch at a time.
    ``write`` buffers; ``flush`` writes the buffer, retries transient failures itself (the
    partition waits; nothing is lost; count each retry in ``sinks.telemetry.RETRIES``) and
    returns the records the destination refused for good, which the agent dead-letters.
    Raising from ``flush`` stops the worker without committing the batch. Writing the same
    record twice must leave one row: redelivery after a crash is normal. ``close`` is called
    once when the worker stops.
    """

    name: str

    def write(self, records: Sequence[Record]) -> None: ...

    async def flush(self) -> FlushResult: ...

    async def close(self) -> None: ...


class Batch(Protocol):
    """What a sink agent needs of the batch it works on (``streams.checkpoint.Checkpoint``)."""

    def on_flush(self, flush: Callable[[], Awaitable[None]]) -> None:
        """Run ``flush`` when the batch commits, before the producer's acks are awaited."""
        ...

    async def dead_letter(self, value: bytes, key: bytes | None, *, reason: str, stage: str, error: str,
                          source_topic: str) -> None:
        """Queue a dead letter; the batch commits only after Kafka acknowledged it."""
        ...
