"""The work the Quix app and the plain loop both do, synchronously: envelope → stages → rows → ClickHouse.

The same pieces the worker uses: the raw envelope's ``AvroSerializer``, ``PipelineEvent.from_raw``,
the stages ``streams.components.build_stages`` builds from the topology with the worker's own
resources (``streams.resources.WorkerResources``: the project lookup on Postgres and Redis, the
Redis key-value store), the ``events`` row format and the ClickHouse client. The async calls
(stages, inserts) run on a private event loop, once per Kafka message and once per insert.

``stage_calls``: ``event`` (the default: the baselines run the same stage objects per event)
calls ``through_stages`` once per event, still one event-loop entry per message; ``message``
hands each stage one message's events in one call, as the batch-first contract allows: a
stronger baseline that borrows the worker's batching.

Rows are inserted in batches like the worker's sink (``MAX_ROWS`` or ``FLUSH_SECONDS``,
whichever comes first: the consumer calls ``flush`` when ``due``); ``Stats`` is written to a
JSON file after every insert, for the harness to read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from bench.worker.stages import Passed, through_stages
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import Topology
from schemas.events import RawEvent
from schemas.serializer import AvroSerializer
from sinks.clickhouse.client import connect
from sinks.clickhouse.config import ClickHouseConfig
from sinks.clickhouse.rows import EVENTS
from streams.components import build_stages
from streams.event import PipelineEvent
from streams.outbox import Outbox, OutMessage
from streams.resources import WorkerResources
from streams.runner import start_stage

RAW: AvroSerializer[dict[str, list[RawEvent]]] = AvroSerializer("raw_envelope")
"""The pipeline's decoder (``streams.pipeline.RAW`` is this same serializer)."""

MAX_ROWS = 20_000  # the default topology's clickhouse sink: batch.max_events
FLUSH_SECONDS = 1.0  # and batch.max_seconds

STAGE_CALLS = ("message", "event")
STAGE_CALLS_HELP = ("event: one stage call per event, as the issue's baselines are defined (default); "
                    "message: the stages get one Kafka message's events per call, a stronger baseline")

Row = tuple[object, ...]
T = TypeVar("T")


@dataclass
class Stats:
    messages: int = 0
    events: int = 0
    passed: int = 0
    dropped: int = 0
    failed: int = 0
    rows_inserted: int = 0
    inserts: int = 0
    insert_seconds: float = 0.0


def events_table(topology: Topology) -> str:
    """The table the topology's ``events`` clickhouse sink writes."""
    for sink in topology.sinks:
        if sink.type == "clickhouse":
            config = ClickHouseConfig.model_validate(sink.config)
            if config.records == "events":
                return config.target_table
    raise ValueError("the topology has no clickhouse sink of events")


async def _nowhere(_message: OutMessage) -> None:
    return None


class ConsumerWork:
    """See the module docstring. ``open`` it, feed it messages, ``flush`` when ``due``, ``close`` it."""

    def __init__(self, topology: Topology, endpoints: Endpoints, stats_path: Path, token_cache_seconds: float,
                 stage_calls: str = "message") -> None:
        if stage_calls not in STAGE_CALLS:
            raise ValueError(f"stage_calls must be one of {STAGE_CALLS}, not {stage_calls!r}")
        self._per_event = stage_calls == "event"
        self._loop = uvloop.new_event_loop()  # the worker runs on uvloop too
        self._resources = WorkerResources(endpoints, token_cache_seconds, topology.pipeline.persons)
        opened = self._run(self._resources.acquire())
        # person rows are the worker's business: here they are written to Postgres and not sent on
        self._outbox = Outbox(_nowhere)
        self._stages = [stage for stage, _ in build_stages(topology.pipeline.stages, opened.for_stages(self._outbox))]
        for stage in self._stages:
            self._run(start_stage(stage))
        self._client = connect(endpoints.clickhouse)
        self._table = events_table(topology)
        self._pending: list[Row] = []
        self._first_pending = 0.0
        self._stats_path = stats_path
        self.stats = Stats()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(work)

    def rows(self, raws: list[RawEvent], source_topic: str) -> list[Row]:
        """One Kafka message's events through the stages: the ``events`` rows of those that passed."""
        passed = self._run(self._through([PipelineEvent.from_raw(raw, source_topic) for raw in raws]))
        stats = self.stats
        stats.messages += 1
        stats.events += len(raws)
        stats.passed += len(passed.events)
        stats.dropped += passed.dropped
        stats.failed += passed.failed
        return [EVENTS.row_of(event.processed) for event in passed.events if event.processed is not None]

    async def _through(self, events: list[PipelineEvent]) -> Passed:
        try:
            return await self._through_stages(events)
        finally:
            self._outbox.drain()

    async def _through_stages(self, events: list[PipelineEvent]) -> Passed:
        if not self._per_event:
            return await through_stages(self._stages, events)
        total = Passed()
        for event in events:
            one = await through_stages(self._stages, [event])
            total.events += one.events
            total.dropped += one.dropped
            total.failed += one.failed
        return total

    def add(self, rows: list[Row]) -> None:
        if rows and not self._pending:
            self._first_pending = time.monotonic()
        self._pending += rows

    @property
    def due(self) -> bool:
        """Enough rows for an insert, or the oldest has waited ``FLUSH_SECONDS``."""
        return len(self._pending) >= MAX_ROWS or (
            bool(self._pending) and time.monotonic() - self._first_pending >= FLUSH_SECONDS)

    def flush(self) -> None:
        """Insert the pending rows (one request), then write the stats."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        started = time.perf_counter()
        self._run(self._client.insert(self._table, EVENTS.columns, rows))
        self.stats.insert_seconds += time.perf_counter() - started
        self.stats.rows_inserted += len(rows)
        self.stats.inserts += 1
        self._stats_path.write_text(json.dumps(asdict(self.stats)))

    def close(self) -> None:
        self.flush()
        for stage in self._stages:
            self._run(stage.close())
        self._run(self._client.aclose())
        self._run(self._resources.release())
        self._loop.close()
