"""A sink agent's work for one batch: envelopes in, records written, the flush left to the checkpoint.

``streams`` runs one sink agent per declared sink (a Faust agent reading the sink's source
topic) and hands each batch of Kafka messages here with the batch's checkpoint. The agent
decodes every envelope (any registered envelope subject), gives its records to the sink, and
registers one flush with the checkpoint; the checkpoint runs it before it awaits the
producer's acks and acks the messages. Undecodable messages and records the destination
refused for good are dead-lettered, with the sink's name as the stage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from schemas.errors import SchemaError
from schemas.serializer import decode_envelope, encode_envelope
from sinks import telemetry
from sinks.base import Batch, Sink

Message = tuple[bytes, bytes | None]
"""A Kafka message's value and key."""


class SinkAgent:
    """Feeds one sink from its source topic; see the module docstring."""

    def __init__(self, sink: Sink, source_topic: str) -> None:
        self.sink = sink
        self._source = source_topic
        self._rows_written = telemetry.ROWS_WRITTEN.labels(sink.name)
        self._rows_rejected = telemetry.ROWS_REJECTED.labels(sink.name)
        self._flush_seconds = telemetry.FLUSH_SECONDS.labels(sink.name)
        self._subject = ""  # the envelope subject of the source topic (one per topic), for dead letters

    async def handle(self, messages: Sequence[Message], batch: Batch) -> None:
        """Write the records of ``messages`` and register the sink's flush with ``batch``."""
        for value, key in messages:
            try:
                self._subject, records = decode_envelope(value)
            except SchemaError as exc:
                await batch.dead_letter(value, key, reason="undecodable", stage=self.sink.name, error=str(exc),
                                        source_topic=self._source)
                continue
            self.sink.write(records)

        async def flush() -> None:
            started = time.perf_counter()
            result = await self.sink.flush()
            self._flush_seconds.observe(time.perf_counter() - started)
            self._rows_written.inc(result.written)
            if not result.rejected:
                return
            self._rows_rejected.inc(len(result.rejected))
            for rejected in result.rejected:  # each alone, in the envelope format it came in
                await batch.dead_letter(
                    encode_envelope(self._subject, [dict(rejected.record)]), None, reason="sink_rejected",
                    stage=self.sink.name, error=rejected.error, source_topic=self._source)

        batch.on_flush(flush)

    async def close(self) -> None:
        await self.sink.close()
