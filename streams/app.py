"""The Faust application built from a topology: the pipeline agent, one agent per sink, plugin agents.

- ``pipeline`` reads raw envelopes from the pipeline's live sources and runs ``streams.pipeline``;
  ``pipeline_historical`` does the same for the capture's historical topic, after live traffic
  (``streams.priority``);
- ``sink_<name>`` reads its source topic and feeds its sink through ``sinks.agent.SinkAgent``;
- ``agent_<name>``, a task, runs a plugin agent's handler on a consumer of its own (``streams.agents``).

Every batch of every agent commits through one ``streams.checkpoint.Checkpoint`` (flush sinks →
await producer acks → ack the messages); the agents share the resources the worker opens once
(``streams.resources``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import StreamT, TopicT
from prometheus_client import generate_latest

from headwater.runtime.gc_tuning import tune_gc
from headwater.runtime.settings import Endpoints, Settings
from headwater.runtime.topology import SinkSpec, Topology
from schemas.envelope import header_captured, header_count
from sinks.agent import SinkAgent
from sinks.base import Sink, SourceEnvelope, SourcePosition
from sinks.clickhouse.client import connect as clickhouse_connect
from sinks.errors import SinkError
from sinks.registry import resolve_sink
from streams.agents import add_agents
from streams.batching import consume_in_batches
from streams.canary import Canary, CanaryOptions, events_table
from streams.checkpoint import Checkpoint
from streams.components import build_stages
from streams.errors import StageStartError
from streams.health import WorkerHealth
from streams.lag_metrics import add_lag_metrics
from streams.logs import quiet_worker_logs
from streams.outbox import Outbox
from streams.pipeline import Pipeline, outbox_sender
from streams.priority import FaustOffsets, LivePriority
from streams.resources import WorkerResources
from streams.runner import StageRunner
from streams.windows.kafka import add_windows

log = logging.getLogger("headwater.worker")

Fatal = Callable[[BaseException], Awaitable[None]]

PIPELINE_BATCH_EVENTS = 2_000
"""Events per pipeline batch: one stage call each. 5,000 cost no less CPU and held more memory."""
PIPELINE_BATCH_SECONDS = 0.2
POLL_MESSAGES = 50
"""Messages one poll of the Kafka client hands over (all it has buffered, by default): what was
polled is delivered even when the partition is paused since, so this bounds what a pause of
the historical partitions (``streams.priority``) leaves to process."""
WORKER_GC_THRESHOLDS = (10_000, 10, 10)
"""The cyclic GC in the worker (``headwater.runtime.gc_tuning``). Measured on a 650,000-event
backlog: CPython's defaults (700, 10, 10) cost 61 µs an event; the gateway's (50,000, 20, 20)
47 µs but RSS grew ~10 MB a second to 800 MB and more (objects outliving a young window pile up
in the old generation, and Faust's messages and events sit in reference cycles); these 48 µs
with RSS flat at ~250 MB."""
HISTORICAL_BATCH_EVENTS = 1_000
"""Smaller batches for imports: a live event waits at most for the historical batch in progress."""
HISTORICAL_BUFFER_MESSAGES = 8
"""What Faust buffers for the historical agent: after a pause, the work still in hand is small."""
SINK_BUFFER_MESSAGES = 16
"""What Faust prefetches for a sink agent: processed envelopes are up to 256 kB each, and a sink
holds a batch being written and the next one already; more buffered only costs memory."""
STREAM_BUFFER_MESSAGES = 128
"""Messages Faust prefetches per stream unless the topic says less (sinks, historical). Faust's
default, 4,096, let a sink agent hold 4,096 processed envelopes: the 2.5 GB peak of #9."""


@dataclass(frozen=True)
class WorkerOptions:
    """How the worker process runs (not part of the topology)."""

    web_port: int
    data_dir: Path
    web_host: str = "127.0.0.1"
    token_cache_seconds: float = 30.0
    canary: CanaryOptions | None = None


def build_app(topology: Topology, endpoints: Endpoints, options: WorkerOptions) -> faust.App:
    """The Faust app for ``topology`` (already checked with ``streams.components``); connections
    open when its first agent starts."""
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
        # Faust listens on web_bind (its default: every interface) and names itself by web_host.
        web_bind=options.web_host,
        web_host=options.web_host,
        web_port=options.web_port,
        datadir=str(options.data_dir),
        autodiscover=False,
        stream_wait_empty=False,
        stream_buffer_maxsize=STREAM_BUFFER_MESSAGES,
        broker_max_poll_records=POLL_MESSAGES,
    )
    resources = WorkerResources(endpoints, options.token_cache_seconds, topology.pipeline.persons)
    dead_letters = app.topic(topology.pipeline.dead_letter)

    async def crash(exc: BaseException) -> None:
        log.error("the worker stops: %s", exc)
        await app.crash(exc)

    live, historical = _pipeline_sources(topology)

    crashing: list[asyncio.Task[None]] = []  # kept, so that the crash is not collected half-way

    def crash_if_failed(task: asyncio.Task[None]) -> None:
        """A helper task runs until cancelled; one that fails instead stops the worker, loudly."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            crashing.append(asyncio.ensure_future(crash(exc)))

    def pipeline(after: Callable[[Checkpoint], None] | None = None, max_events: int = PIPELINE_BATCH_EVENTS,
                 alongside: Callable[[], Coroutine[Any, Any, None]] | None = None,
                 ) -> Callable[[StreamT[bytes]], Awaitable[None]]:
        async def run(stream: StreamT[bytes]) -> None:
            opened = await resources.acquire()
            outbox = Outbox(outbox_sender(app))
            runner = StageRunner(build_stages(topology.pipeline.stages, opened.for_stages(outbox)))
            work = Pipeline(topology, app, runner, opened.warnings, outbox)

            async def handle(checkpoint: Checkpoint) -> None:
                await work.handle(checkpoint)
                if after is not None:
                    after(checkpoint)

            beside = asyncio.create_task(alongside()) if alongside is not None else None
            if beside is not None:
                beside.add_done_callback(crash_if_failed)
            try:
                try:
                    await runner.start()  # plugins' setup: a missing file stops the worker here, not per event
                except StageStartError as exc:
                    await crash(exc)
                    return
                await consume_in_batches(stream, handle, dead_letter_topic=dead_letters,
                                         max_events=max_events, max_seconds=PIPELINE_BATCH_SECONDS,
                                         on_fatal=crash)
            finally:
                if beside is not None:
                    beside.cancel()
                    await asyncio.gather(beside, return_exceptions=True)
                await runner.close()
                await resources.release()

        return run

    if live and historical:  # two agents; the historical one's fetching yields to live traffic (streams.priority)
        priority = LivePriority(live, FaustOffsets(app))
        app.agent(app.topic(*live), name="pipeline", concurrency=1)(
            pipeline(after=lambda checkpoint: priority.live_handled(checkpoint.messages)))
        app.agent(app.topic(historical, maxsize=HISTORICAL_BUFFER_MESSAGES), name="pipeline_historical",
                  concurrency=1)(
            pipeline(max_events=HISTORICAL_BATCH_EVENTS, alongside=lambda: priority.hold_historical(historical)))
    else:
        app.agent(app.topic(*topology.pipeline.sources), name="pipeline", concurrency=1)(pipeline())


    add_agents(app, topology, endpoints.kafka, dead_letters, crash)
    add_windows(app, topology, endpoints.kafka, crash)
    if options.canary is not None:
        _add_canary(app, topology, endpoints, options.canary)

    _add_pages(app, WorkerHealth(endpoints.kafka, resources, _add_sinks(app, topology, endpoints, dead_letters, crash)))
    return app


def _add_sinks(app: faust.App, topology: Topology, endpoints: Endpoints, dead_letters: TopicT,
               crash: Fatal) -> dict[str, Sink]:
    """An agent per sink; the sinks running now, by name, for the readiness page."""
    running: dict[str, Sink] = {}
    for spec in topology.sinks:
        app.agent(app.topic(spec.source, maxsize=SINK_BUFFER_MESSAGES), name=f"sink_{spec.name}", concurrency=1)(
            _sink_agent(spec, endpoints, dead_letters, crash, running))
    return running


def _add_canary(app: faust.App, topology: Topology, endpoints: Endpoints, options: CanaryOptions) -> None:
    """The canary (``streams.canary``) as a task of the worker; a failure is logged and it starts again."""
    table = events_table(topology)
    if table is None:
        log.warning("canary: the topology has no ClickHouse sink of processed events to time the heartbeats by")
        return

    async def canary() -> None:
        while not app.should_stop:
            client = clickhouse_connect(endpoints.clickhouse)
            try:
                await Canary(options, client, table).run()
            except asyncio.CancelledError:
                raise
            except Exception:  # the canary measures; it must never stop the worker
                log.exception("canary failed; starting it again in %.0fs", options.every_seconds)
                await asyncio.sleep(options.every_seconds)
            finally:
                await client.aclose()

    app.task(canary)


def _add_pages(app: faust.App, health: WorkerHealth) -> None:
    """The worker's web pages: liveness, readiness (``streams.health``) and Prometheus metrics."""

    @app.page("/_liveness")
    async def liveness(web: Any, request: Any) -> Any:
        """200 while the worker runs."""
        return web.json({"status": "ok"})

    @app.page("/_readiness")
    async def readiness(web: Any, request: Any) -> Any:
        """200 when Kafka, Postgres, Redis and every sink's destination answer; else 503, with what each said."""
        answer = await health.readiness()
        return web.json(answer, status=200 if answer["ready"] else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        """Prometheus metrics of this worker (stage outcomes, sinks, plugins) on its web port."""
        # aiohttp refuses a charset inside content_type; Prometheus' type minus its charset.
        return web.bytes(generate_latest(), content_type="text/plain; version=0.0.4")


def _pipeline_sources(topology: Topology) -> tuple[list[str], str | None]:
    """The pipeline's live sources, and its historical one if it reads the capture's historical topic."""
    sources = list(topology.pipeline.sources)
    historical = topology.capture.historical_topic
    if historical not in sources:
        return sources, None
    return [s for s in sources if s != historical], historical


def _sink_agent(spec: SinkSpec, endpoints: Endpoints, dead_letters: TopicT, crash: Fatal,
                running: dict[str, Sink]) -> Callable[[StreamT[bytes]], Awaitable[None]]:
    async def run(stream: StreamT[bytes]) -> None:
        try:
            work = SinkAgent(resolve_sink(spec.type).build(spec.name, spec.config, endpoints), spec.source)
            await work.start()
        except Exception as exc:  # noqa: BLE001 - a sink that cannot be built stops the worker, loudly
            await crash(SinkError(f"sink {spec.name!r} ({spec.type}) cannot start: {exc}"))
            return
        running[spec.name] = work.sink

        async def handle(checkpoint: Checkpoint) -> None:
            await work.handle([SourceEnvelope(m.value, m.key, header_count(m.headers),
                                              SourcePosition(m.message.topic, m.message.partition, m.message.offset),
                                              header_captured(m.headers) or m.message.timestamp)
                               for m in checkpoint.messages], checkpoint)

        try:
            await consume_in_batches(stream, handle, dead_letter_topic=dead_letters,
                                     max_events=spec.batch.max_events, max_seconds=spec.batch.max_seconds,
                                     on_fatal=crash)
        finally:
            running.pop(spec.name, None)
            await work.close()

    return run


def run_worker(settings: Settings, endpoints: Endpoints, topology: Topology, loglevel: str = "warning") -> None:
    """Run the worker in this process until it is stopped (SIGTERM/SIGINT)."""
    import uvloop

    uvloop.install()
    options = WorkerOptions(
        web_port=settings.worker_web_port,
        web_host=settings.worker_web_host,
        data_dir=settings.state_dir / "faust" / topology.app_id,
        token_cache_seconds=settings.token_cache_seconds,
        canary=CanaryOptions(tuple(settings.canary_tokens), settings.canary_seconds,
                             settings.canary_gateway or f"http://{settings.gateway_host}:{settings.gateway_port}")
        if settings.canary_tokens else None,
    )
    options.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(topology, endpoints, options)
    add_lag_metrics(app, topology, endpoints.kafka)  # headwater_consumer_*: a task measuring lag every few seconds
    tune_gc(WORKER_GC_THRESHOLDS)  # see WORKER_GC_THRESHOLDS
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    quiet_worker_logs(worker)  # no terminal codes in a log file; a starting coordinator is no error
    worker.execute_from_commandline()
