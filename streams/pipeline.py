"""The pipeline agent's work for one batch of raw envelopes.

Decode every envelope, run the stages on its events (``StageRunner``), and send through the
batch's checkpoint: processed envelopes (one per output partition, per the envelope rules of
``schemas.envelope``), dead letters (each event as it arrived, in a one-event raw envelope), the
warnings the hourly limit admits, what stages put in the ``Outbox`` (person rows) and the
re-keyed records of the windows over the output (``streams.windows.tap``). The checkpoint commits
after all of that was acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence

import faust
from faust.types import TopicT

from headwater.runtime.topology import Topology
from schemas.envelope import captured_header, count_header, event_key, pack
from schemas.errors import SchemaError
from schemas.events import IngestionWarning, ProcessedEvent, RawEvent
from schemas.processed_writer import encode_processed_envelope
from schemas.serializer import AvroSerializer
from streams import telemetry
from streams.checkpoint import Checkpoint
from streams.event import PipelineEvent, Position
from streams.outbox import Outbox, OutMessage, Send
from streams.runner import StageRunner
from streams.warnings import WarningLimiter
from streams.windows.tap import window_taps

RAW: AvroSerializer[dict[str, list[RawEvent]]] = AvroSerializer("raw_envelope")
WARNINGS: AvroSerializer[dict[str, list[IngestionWarning]]] = AvroSerializer("ingestion_warnings")


PROCESSED_ENVELOPE_BYTES = 256_000
"""Processed envelopes are smaller than the broker allows: ~130 events each, so Faust's cost per
message stays under 1 µs an event while a sink's prefetched messages stay small in memory."""


def _processed_key(event: ProcessedEvent) -> bytes:
    return f"{event['team_id']}:{event['distinct_id']}".encode()


def _processed_size(event: ProcessedEvent) -> int:
    return len(event["properties"]) + len(event["person_properties"]) + len(event["distinct_id"]) + 200


def outbox_sender(app: faust.App) -> Send:
    """Sends an ``Outbox`` message through ``app``'s producer and waits for the ack."""
    topics: dict[str, TopicT] = {}

    async def send(message: OutMessage) -> None:
        topic = topics.get(message.topic) or topics.setdefault(message.topic, app.topic(message.topic))
        await (await topic.send(key=message.key, value=message.value, headers=[count_header(message.count)]))

    return send


class Pipeline:
    """Raw envelopes in, processed envelopes, dead letters and warnings out; see the module docstring."""

    def __init__(self, topology: Topology, app: faust.App, runner: StageRunner, warnings: WarningLimiter,
                 outbox: Outbox) -> None:
        self._app = app
        self._outbox = outbox
        self._side_topics: dict[str, TopicT] = {}
        self._output: TopicT = app.topic(topology.pipeline.output)
        self._output_partitions = topology.topics[topology.pipeline.output].partitions
        self._warnings_topic = app.topic(topology.pipeline.warnings) if topology.pipeline.warnings else None
        self._runner = runner
        self._warnings = warnings
        self._taps = window_taps(topology)

    async def handle(self, checkpoint: Checkpoint) -> None:
        events: list[PipelineEvent] = []
        for message in checkpoint.messages:
            source = message.message.topic
            try:
                raws = RAW.decode(message.value)["events"]
            except SchemaError as exc:
                await checkpoint.dead_letter(message.value, message.key, reason="undecodable", stage="decode",
                                             error=str(exc), source_topic=source)
                continue
            partition, offset = message.message.partition, message.message.offset
            events.extend(PipelineEvent.from_raw(raw, source, Position(source, partition, offset, i))
                          for i, raw in enumerate(raws))
        telemetry.EVENTS_RECEIVED.inc(len(events))
        # when the batch's oldest event was captured: its processed envelopes and warnings carry it, so
        # a sink measures capture → written (sinks.telemetry.END_TO_END_SECONDS) without decoding them
        captured = min((m.message.timestamp for m in checkpoint.messages if m.message.timestamp), default=None)
        stamp = [captured_header(captured)] if captured else []
        result = await self._runner.run(events)
        for failed in result.dead_lettered:
            arrived = failed.event.arrived
            await checkpoint.dead_letter(
                RAW.encode({"events": [arrived]}), event_key(arrived["token"], arrived["distinct_id"]),
                reason=failed.reason, stage=failed.stage, error=failed.error, source_topic=failed.event.source_topic)
        processed = [e.processed for e in result.passed if e.processed is not None]
        for envelope in pack(processed, key_of=_processed_key, size_of=_processed_size,
                             partitions=self._output_partitions, max_bytes=PROCESSED_ENVELOPE_BYTES):
            await checkpoint.send(self._output, encode_processed_envelope(envelope.events), key=envelope.key,
                                  partition=envelope.partition,
                                  headers=[count_header(len(envelope.events)), *stamp])
        if self._taps:
            await self._send_rekeyed(checkpoint, result.passed)
        if self._warnings_topic is not None and result.warned:
            admitted = await self._warnings.admit(result.warned)
            if admitted:
                await checkpoint.send(self._warnings_topic, WARNINGS.encode({"warnings": admitted}),
                                      headers=[count_header(len(admitted)), *stamp])
                checkpoint.after_commit(lambda: telemetry.WARNINGS_EMITTED.inc(len(admitted)))
        await self._send_outbox(checkpoint)
        checkpoint.after_commit(lambda: telemetry.EVENTS_PROCESSED.inc(len(processed)))

    async def _send_rekeyed(self, checkpoint: Checkpoint, passed: Sequence[PipelineEvent]) -> None:
        """The windows over the output, re-keyed here (``streams.windows.tap``), in this batch."""
        events = [(e.position, e.processed) for e in passed if e.processed is not None and e.position is not None]
        for tap in self._taps:
            for out in tap.messages(events):
                await checkpoint.send(self._topic(out.topic), out.value, partition=out.partition)

    def _topic(self, name: str) -> TopicT:
        topic = self._side_topics.get(name)
        if topic is None:
            topic = self._side_topics[name] = self._app.topic(name)
        return topic

    async def _send_outbox(self, checkpoint: Checkpoint) -> None:
        """What stages produced besides events (person rows): in this batch, acknowledged before its commit."""
        messages = self._outbox.drain()
        for message in messages:
            await checkpoint.send(self._topic(message.topic), message.value, key=message.key,
                                  headers=[count_header(message.count)])
        delivered = [m.on_delivered for m in messages if m.on_delivered is not None]
        if delivered:
            checkpoint.after_commit(lambda: [callback() for callback in delivered])
