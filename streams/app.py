"""The Faust application built from a topology: the pipeline agent and one agent per sink.

- ``pipeline`` reads raw envelopes from the pipeline's sources, runs the stages on every
  event, writes processed envelopes (per output partition) and dead letters, and acks its
  input only after Kafka acknowledged all of that.
- one agent per sink reads processed envelopes, writes them, and acks only after the sink's
  flush returned.

The commit order is fixed: downstream writes acknowledged (sink flushed, producer acked),
then the input messages are acked, then Faust commits acked offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import EventT, StreamT, TopicT
from faust.types.tuples import RecordMetadata
from prometheus_client import generate_latest

from headwater.projects import ProjectResolver
from headwater.settings import Endpoints, Settings
from schemas.envelope import pack
from schemas.errors import SchemaError
from schemas.events import IngestionWarning, ProcessedEvent, RawEvent
from schemas.serializer import AvroSerializer
from sinks.clickhouse.client import connect as clickhouse_connect
from sinks.clickhouse.rows import RECORD_KINDS, RecordKind
from sinks.clickhouse.sink import ClickHouseSink
from streams import telemetry
from streams.agents import add_agent, load_handler
from streams.batching import consume_in_batches
from streams.dlq import send_dead_letter
from streams.event import PipelineEvent
from streams.runner import StageRunner
from streams.stages.base import StageDeps
from streams.stages.registry import resolve_stage
from streams.topology import ClickHouseSinkSpec, Topology
from streams.warnings import WarningLimiter

log = logging.getLogger("headwater.worker")

Fatal = Callable[[BaseException], Awaitable[None]]

RAW: AvroSerializer[dict[str, list[RawEvent]]] = AvroSerializer("raw_envelope")
PROCESSED: AvroSerializer[dict[str, list[ProcessedEvent]]] = AvroSerializer("processed_envelope")
WARNINGS: AvroSerializer[dict[str, list[IngestionWarning]]] = AvroSerializer("ingestion_warnings")


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker process runs (not part of the topology)."""

    web_port: int
    data_dir: Path
    token_cache_seconds: float = 30.0


def _processed_key(event: ProcessedEvent) -> bytes:
    return f"{event['team_id']}:{event['distinct_id']}".encode()


def _processed_size(event: ProcessedEvent) -> int:
    return len(event["properties"]) + len(event["person_properties"]) + len(event["distinct_id"]) + 200


async def _all_acked(pending: Sequence[Awaitable[RecordMetadata]]) -> None:
    if pending:
        await asyncio.gather(*pending)


class Pipeline:
    """The pipeline agent's work for one batch of raw envelopes."""

    def __init__(self, topology: Topology, app: faust.App, runner: StageRunner, warnings: WarningLimiter) -> None:
        self._output = app.topic(topology.pipeline.output)
        self._output_partitions = topology.topics[topology.pipeline.output].partitions
        self._dlq = app.topic(topology.pipeline.dead_letter)
        self._warnings_topic = app.topic(topology.pipeline.warnings) if topology.pipeline.warnings else None
        self._runner = runner
        self._warnings = warnings

    async def handle(self, batch: Sequence[EventT[bytes]]) -> None:
        pending: list[Awaitable[RecordMetadata]] = []
        events: list[PipelineEvent] = []
        for message in batch:
            source = message.message.topic
            try:
                raws = RAW.decode(message.value)["events"]
            except SchemaError as exc:
                pending.append(await send_dead_letter(
                    self._dlq, message.value, message.key, reason="undecodable", stage="decode",
                    error=str(exc), source_topic=source))
                continue
            events.extend(PipelineEvent.from_raw(raw, source) for raw in raws)
        result = await self._runner.run(events)
        for failed in result.dead_lettered:
            arrived = failed.event.arrived
            value = RAW.encode({"events": [arrived]})
            key = f"{arrived['token']}:{arrived['distinct_id']}".encode()
            pending.append(await send_dead_letter(
                self._dlq, value, key, reason=failed.reason, stage=failed.stage,
                error=failed.error, source_topic=failed.event.source_topic))
        processed = [e.output for e in result.passed if e.output is not None]
        for envelope in pack(processed, key_of=_processed_key, size_of=_processed_size,
                             partitions=self._output_partitions):
            pending.append(await self._output.send(
                key=envelope.key, value=PROCESSED.encode({"events": envelope.events}),
                partition=envelope.partition))
        if self._warnings_topic is not None and result.warned:
            admitted = await self._warnings.admit(result.warned)
            if admitted:
                pending.append(await self._warnings_topic.send(value=WARNINGS.encode({"warnings": admitted})))
                telemetry.WARNINGS_EMITTED.inc(len(admitted))
        await _all_acked(pending)
        telemetry.EVENTS_EMITTED.inc(len(processed))


class SinkAgent:
    """A sink agent's work for one batch of envelopes (processed events or warnings)."""

    def __init__(self, sink: ClickHouseSink, kind: RecordKind, dlq: TopicT, source: str) -> None:
        self._sink = sink
        self._kind = kind
        self._serializer: AvroSerializer[dict[str, Any]] = AvroSerializer(kind.subject)
        self._dlq = dlq
        self._source = source

    async def handle(self, batch: Sequence[EventT[bytes]]) -> None:
        pending: list[Awaitable[RecordMetadata]] = []
        for message in batch:
            try:
                self._sink.write(self._serializer.decode(message.value)[self._kind.field])
            except SchemaError as exc:
                pending.append(await send_dead_letter(
                    self._dlq, message.value, message.key, reason="undecodable", stage=self._sink.name,
                    error=str(exc), source_topic=self._source))
        with telemetry.SINK_FLUSH_SECONDS.labels(self._sink.name).time():
            result = await self._sink.flush()
        telemetry.SINK_ROWS.labels(self._sink.name).inc(result.written)
        for rejected in result.rejected:
            pending.append(await send_dead_letter(
                self._dlq, self._serializer.encode({self._kind.field: [rejected.record]}), None,
                reason="sink_rejected", stage=self._sink.name, error=rejected.error, source_topic=self._source))
        await _all_acked(pending)


def build_app(topology: Topology, endpoints: Endpoints, options: WorkerOptions) -> faust.App:
    """The Faust app for ``topology``; connections open when its agents start."""
    app = faust.App(
        topology.app_id,
        broker=[f"kafka://{host}" for host in endpoints.kafka.split(",")],
        value_serializer="raw",
        key_serializer="raw",
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_compression_type="lz4",
        broker_commit_interval=1.0,
        # A worker that dies without leaving the group holds its partitions this long.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        web_enabled=True,
        web_host="127.0.0.1",
        web_port=options.web_port,
        datadir=str(options.data_dir),
        autodiscover=False,
        stream_wait_empty=False,
    )

    async def crash(exc: BaseException) -> None:
        log.error("the worker stops: %s", exc)
        await app.crash(exc)

    async def pipeline(stream: StreamT[bytes]) -> None:
        projects = ProjectResolver(endpoints.postgres, endpoints.redis, options.token_cache_seconds)
        await projects.open()
        deps = StageDeps(projects=projects, redis_url=endpoints.redis)
        runner = StageRunner([
            (resolve_stage(spec.type, spec.plugin).build(spec.name, spec.config, deps), spec)
            for spec in topology.pipeline.stages
        ])
        warnings = WarningLimiter(endpoints.redis)
        work = Pipeline(topology, app, runner, warnings)
        try:
            await consume_in_batches(stream, work.handle, max_messages=100, max_seconds=0.2, on_fatal=crash)
        finally:
            await runner.close()
            await warnings.close()
            await projects.close()

    app.agent(app.topic(*topology.pipeline.sources), name="pipeline", concurrency=1)(pipeline)

    for spec in topology.sinks:
        app.agent(app.topic(spec.source), name=f"sink_{spec.name}", concurrency=1)(
            _sink_agent(app, topology, spec, endpoints, crash)
        )

    for agent in topology.agents:
        add_agent(app, agent.name, agent.source, load_handler(agent.handler))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        """Prometheus metrics of this worker (stage outcomes, sinks, plugins) on its web port."""
        # aiohttp refuses a charset inside content_type; Prometheus' type minus its charset.
        return web.bytes(generate_latest(), content_type="text/plain; version=0.0.4")

    return app


def _sink_agent(app: faust.App, topology: Topology, spec: ClickHouseSinkSpec, endpoints: Endpoints,
                crash: Fatal) -> Callable[[StreamT[bytes]], Awaitable[None]]:
    async def run(stream: StreamT[bytes]) -> None:
        kind = RECORD_KINDS[spec.records]
        sink = ClickHouseSink(spec.name, clickhouse_connect(endpoints.clickhouse), spec.target_table, kind.row_of)
        work = SinkAgent(sink, kind, app.topic(topology.pipeline.dead_letter), spec.source)
        try:
            await consume_in_batches(stream, work.handle, max_messages=spec.batch.max_messages,
                                     max_seconds=spec.batch.max_seconds, on_fatal=crash)
        finally:
            await sink.close()

    return run


def run_worker(settings: Settings, endpoints: Endpoints, topology: Topology, loglevel: str = "warning") -> None:
    """Run the worker in this process until it is stopped (SIGTERM/SIGINT)."""
    import uvloop

    uvloop.install()
    options = WorkerOptions(
        web_port=settings.worker_web_port,
        data_dir=settings.state_dir / "faust" / topology.app_id,
        token_cache_seconds=settings.token_cache_seconds,
    )
    options.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(topology, endpoints, options)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
