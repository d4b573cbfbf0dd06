"""The contract every sink implements, and what a sink agent needs from the batch it works on.

The worker (``streams``) drives any registered sink the same way, through ``sinks.agent``:

0. ``start()`` once, before the first batch (a destination that cannot work stops the worker here);
1. ``write(envelopes)`` with the batch's Kafka messages as ``SourceEnvelope`` (no I/O expected);
2. ``flush()`` once per batch, from the batch's checkpoint, before any producer ack is awaited;
3. the batch's offsets are committed only after ``flush`` returned and the dead letters of the
   records it rejected were acknowledged.

So a sink never acknowledges anything itself: returning from ``flush`` is its acknowledgement.

A ``SourceEnvelope`` decodes its records only when asked (``records()``): a sink whose
destination reads Avro itself takes ``encoded()`` (the records' bytes, ``schemas.container``)
and decodes nothing; the agent has already checked that an envelope is either laid out that
way or decodable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from headwater.runtime.health import Health
from schemas.container import EncodedRecords, encoded_records
from schemas.serializer import decode_envelope

Record = Mapping[str, Any]
__all__ = ["Batch", "FlushResult", "Health", "Record", "Rejected", "Sink", "SourceEnvelope", "SourcePosition",
           "Unwritten"]


@dataclass(frozen=True)
class SourcePosition:
    """A source message's topic, partition and offset."""

    topic: str
    partition: int
    offset: int


class SourceEnvelope:
    """One message of a sink's source topic: an envelope of records, decoded only when asked."""

    __slots__ = ("_encoded", "_records", "_subject", "captured_at", "count", "key", "position", "value")

    def __init__(self, value: bytes, key: bytes | None, count: int | None,
                 position: SourcePosition | None = None, captured_at: float | None = None) -> None:
        self.value = value
        self.key = key
        self.count = count
        """Its ``count`` header (how many records it holds), if it has one."""
        self.position = position
        """Where it was read (None outside the worker): a sink that names its output by it
        (``files``) writes a redelivered envelope to the same place."""
        self.captured_at = captured_at
        """When its records' events were captured (seconds since the epoch; the pipeline's
        ``captured_at`` header, else the message's Kafka timestamp), None outside the worker: what
        the sink agent measures end-to-end latency and freshness from."""
        self._encoded: EncodedRecords | bool | None = False  # False: not looked at yet
        self._records: list[dict[str, Any]] | None = None
        self._subject = ""

    def encoded(self) -> EncodedRecords | None:
        """Its records' Avro bytes, when the message is laid out as one block of ``count`` records."""
        if self._encoded is False:
            self._encoded = encoded_records(self.value, self.count)
        return self._encoded if isinstance(self._encoded, EncodedRecords) else None

    def records(self) -> list[dict[str, Any]]:
        """Its records, decoded once; ``schemas.errors.SchemaError`` if it cannot be."""
        if self._records is None:
            self._subject, self._records = decode_envelope(self.value)
        return self._records

    @property
    def subject(self) -> str:
        """The envelope's schema subject (``processed_envelope``, ``ingestion_warnings``)."""
        encoded = self.encoded()
        if encoded is not None:
            return encoded.subject
        self.records()
        return self._subject


@dataclass(frozen=True)
class Rejected:
    """A record the destination refused for good, with its error."""

    record: Record
    error: str


@dataclass(frozen=True)
class Unwritten:
    """An envelope the sink did not write, dead-lettered whole with why: ``undecodable`` (its records
    could not be decoded when the sink needed them) or ``destination_paused`` (the destination kept
    failing; ``headwater dlq replay`` delivers it to this sink once the destination is back)."""

    envelope: SourceEnvelope
    error: str
    reason: str = "undecodable"


@dataclass(frozen=True)
class FlushResult:
    """What one ``flush`` made durable, and what the destination refused for good."""

    written: int
    rejected: list[Rejected] = field(default_factory=list)
    unwritten: list[Unwritten] = field(default_factory=list)


class Sink(Protocol):
    """Writes records (processed events, warnings) to a destination, durably and idempotently.

    Called by ``sinks.agent.SinkAgent`` on the worker's event loop, one batch at a time.
    ``write`` buffers; ``flush`` writes the buffer, retries transient failures itself (the
    partition waits; nothing is lost; count each retry in ``sinks.telemetry.RETRIES``) and
    returns the records the destination refused for good, which the agent dead-letters (and
    the envelopes it did not write, ``Unwritten``, dead-lettered whole with their reason).
    Raising from ``flush`` stops the worker without committing the batch. Writing the same
    record twice must leave one row: redelivery after a crash is normal. ``close`` is called
    once when the worker stops.

    Third-party sinks register like the built-in ones (``sinks.registry.register_sink``) and are
    found through the ``headwater.sinks`` entry point group (``sinks.registry``).
    """

    name: str

    async def start(self) -> None:
        """Open clients and check what can be checked before the first batch; raise
        ``PermanentSinkError`` for a destination that cannot work (the worker stops, saying why).
        An unreachable destination is no reason to raise: ``flush`` retries it."""
        ...

    async def healthcheck(self) -> Health:
        """Whether the destination answers now (one cheap request; never raises)."""
        ...

    def write(self, envelopes: Sequence[SourceEnvelope]) -> None: ...

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
