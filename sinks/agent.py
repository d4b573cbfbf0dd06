"""A sink agent's work for one batch: envelopes in, records written, the flush left to the checkpoint.

``streams`` runs one sink agent per declared sink (a Faust agent reading the sink's source
topic) and hands each batch of Kafka messages here, as ``SourceEnvelope``, with the batch's
checkpoint. The agent checks every envelope (laid out as Avro records a destination can read
as they are, or else decodable as any registered envelope subject), gives them to the sink,
and registers one flush with the checkpoint; the checkpoint runs it before it awaits the
producer's acks and acks the messages. Undecodable messages, envelopes the sink did not write
(``Unwritten``) and records the destination refused for good are dead-lettered, with ``sink:<the sink's
name>`` as the stage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from schemas.errors import SchemaError
from schemas.serializer import encode_envelope
from sinks import telemetry
from sinks.base import Batch, Sink, SourceEnvelope, Unwritten

STAGE_PREFIX = "sink:"
"""A sink's dead letters name their stage ``sink:<name>``: ``headwater dlq replay`` gives them back to that sink."""


class SinkAgent:
    """Feeds one sink from its source topic; see the module docstring."""

    def __init__(self, sink: Sink, source_topic: str) -> None:
        self.sink = sink
        self._source = source_topic
        self._rows_written = telemetry.ROWS_WRITTEN.labels(sink.name)
        self._rows_rejected = telemetry.ROWS_REJECTED.labels(sink.name)
        self._flush_seconds = telemetry.FLUSH_SECONDS.labels(sink.name)
        self._batch_records = telemetry.BATCH_RECORDS.labels(sink.name)
        telemetry.RETRIES.labels(sink.name)  # every sink's series from the start, at 0: rate() sees the first one
        telemetry.FALLBACKS.labels(sink.name)
        telemetry.END_TO_END_SECONDS.init(sink.name)
        self._stage = f"{STAGE_PREFIX}{sink.name}"
        self._subject = ""  # the envelope subject of the source topic (one per topic), for dead letters

    async def handle(self, envelopes: Sequence[SourceEnvelope], batch: Batch) -> None:
        """Write ``envelopes`` to the sink and register the sink's flush with ``batch``."""
        sound: list[SourceEnvelope] = []
        for envelope in envelopes:
            try:
                self._subject = envelope.subject  # decodes the envelope unless its records are readable as bytes
            except SchemaError as exc:
                await batch.dead_letter(envelope.value, envelope.key, reason="undecodable", stage=self._stage,
                                        error=str(exc), source_topic=self._source)
                continue
            sound.append(envelope)
        self.sink.write(sound)
        if sound:
            self._batch_records.observe(sum(_records(envelope) for envelope in sound))

        async def flush() -> None:
            started = time.perf_counter()
            result = await self.sink.flush()
            self._flush_seconds.observe(time.perf_counter() - started)
            self._rows_written.inc(result.written)
            self._observe_latency(sound, result.unwritten)
            for unwritten in result.unwritten:
                await batch.dead_letter(unwritten.envelope.value, unwritten.envelope.key, reason=unwritten.reason,
                                        stage=self._stage, error=unwritten.error, source_topic=self._source)
            if not result.rejected:
                return
            self._rows_rejected.inc(len(result.rejected))
            for rejected in result.rejected:  # each alone, in the envelope format it came in
                await batch.dead_letter(
                    encode_envelope(self._subject, [dict(rejected.record)]), None, reason="sink_rejected",
                    stage=self._stage, error=rejected.error, source_topic=self._source)

        batch.on_flush(flush)

    def _observe_latency(self, written: Sequence[SourceEnvelope], unwritten: Sequence[Unwritten]) -> None:
        """Capture → written for the envelopes just flushed (one bucket lookup per envelope), and the
        newest capture time written (freshness)."""
        now = time.time()
        left_out = {id(u.envelope) for u in unwritten}
        newest = 0.0
        for envelope in written:
            if envelope.captured_at is None or id(envelope) in left_out:
                continue
            telemetry.END_TO_END_SECONDS.observe(self.sink.name, max(0.0, now - envelope.captured_at),
                                                 _records(envelope))
            newest = max(newest, envelope.captured_at)
        if newest:
            telemetry.FRESHNESS_SECONDS.set(self.sink.name, newest)

    async def start(self) -> None:
        await self.sink.start()

    async def close(self) -> None:
        await self.sink.close()


def _records(envelope: SourceEnvelope) -> int:
    """How many records ``envelope`` holds, from its ``count`` header (1 without one: no decoding here)."""
    return envelope.count if envelope.count is not None else 1
