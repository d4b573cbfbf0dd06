"""A historical import beside live traffic: does the import raise the live events' latency?

A fresh live pipeline (``bench.worker.live``) whose historical topic (``capture.historical_topic``)
holds ``events`` import events (``historical_migration: true``) before the worker starts:
raw envelopes written with the gateway's own code (``schemas.raw_writer.encode_raw_envelope``,
the ``count`` header, ``schemas.partitioner.partition_for`` on the ``token:distinct_id`` key),
as ``tests/integration/test_historical_priority.py`` does. As soon as the worker's group holds
its partitions, the real SDK sends live events at 50% of the worker's maximum for
``seconds`` (``bench.worker.latency.run_level``) while the import's rows are counted every
``PROGRESS_EVERY`` seconds. Then the import is waited for (at most ``FINISH_TIMEOUT``).

Compared with the plain 50% level of the latency part (same rate, no import; run here first,
on a pipeline of its own, when the latency part is not in this run): the target is live p99
with the import ≤ ``P99_RATIO_TARGET`` times without, the bench's own threshold ("does not raise").
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.console import step
from bench.servers import Context
from bench.worker.backlog import RawEnvelope, produce_envelopes
from bench.worker.latency import LevelResult, level_json, prime, run_level
from bench.worker.live import live_pipeline
from bench.worker.sampling import Poller
from schemas.envelope import event_key
from schemas.events import RawEvent
from schemas.partitioner import partition_for
from tests.support.clickhouse import count
from tests.support.topology import Pipeline
from tests.support.waiting import WaitTimeout, wait_until

IMPORT_EVENT = "bench_import"
PER_ENVELOPE = 100  # events per envelope (one distinct id each)
PROGRESS_EVERY = 2.0
FINISH_TIMEOUT = 180.0  # after the live traffic: the rest of the import
SHARE = 0.5
P99_RATIO_TARGET = 1.2  # live p99 with the import ÷ without: at most this is "does not raise"


@dataclass
class HistoricalPart:
    import_events: int
    fill_seconds: float = 0.0
    live: LevelResult | None = None
    baseline: LevelResult | None = None
    baseline_source: str = ""
    imported_at_live_start: int = 0  # import rows when the live senders began (last sample before)
    imported_during_live: int = 0  # from the live senders' start to their last send (samples before each)
    live_send_seconds: float = 0.0
    import_done_s: float | None = None  # worker assigned → the last import row (None: not within the timeout)
    progress: list[tuple[float, float]] = field(default_factory=list)  # (s since assigned, import rows)
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems and (self.live is None or self.live.valid)

    @property
    def p99_ratio(self) -> float | None:
        if self.live is None or self.baseline is None or not self.baseline.p99_ms or not self.live.events:
            return None
        return self.live.p99_ms / self.baseline.p99_ms


def fill_historical(ctx: Context, pipeline: Pipeline, events: int) -> None:
    """``events`` import events on ``pipeline``'s historical topic, in envelopes of ``PER_ENVELOPE``."""
    topic = pipeline.topology.capture.historical_topic
    partitions = pipeline.partitions(topic)
    now = int(time.time() * 1_000_000)

    def envelopes() -> Iterator[RawEnvelope]:
        for start in range(0, events, PER_ENVELOPE):
            distinct_id = f"import-user-{start // PER_ENVELOPE}"
            batch = [RawEvent(uuid=str(uuid.uuid4()), event=IMPORT_EVENT, distinct_id=distinct_id, token=ctx.token,
                              timestamp=now, now=now, sent_at=None, ip=None, properties='{"$lib": "bench"}',
                              set=None, set_once=None, historical_migration=True, capture_warnings=[],
                              skip_person_processing=False)
                     for _ in range(min(PER_ENVELOPE, events - start))]
            key = event_key(ctx.token, distinct_id)
            yield RawEnvelope(partition_for(key, partitions), key, batch)

    produce_envelopes(ctx.endpoints.kafka, topic, envelopes())


def run_historical(ctx: Context, max_rate: float, events: int, seconds: float, warmup: float, senders: int,
                   baseline: LevelResult | None) -> HistoricalPart:
    """See the module docstring; ``baseline``: the latency part's 50% level, if it ran."""
    part = HistoricalPart(events)
    if baseline is None:
        step(f"historical: no plain 50% level in this run: measuring one first ({seconds:g}s, no import)")
        with live_pipeline(ctx, "plain", worker_cpu=ctx.args.server_cpu) as plain:
            prime(ctx, plain)
            baseline = run_level(ctx, plain, "50%, no import", "bench_plain_50", SHARE, max_rate, seconds, warmup,
                                 senders)
        part.baseline_source = f"a plain 50% level of {seconds:g}s measured by this part"
    else:
        part.baseline_source = "the latency part's 50% level"
    part.baseline = baseline

    def fill(pipeline: Pipeline) -> None:
        started = time.monotonic()
        fill_historical(ctx, pipeline, events)
        part.fill_seconds = round(time.monotonic() - started, 1)
        step(f"historical: {events:,} import events on {pipeline.topology.capture.historical_topic} "
             f"in {part.fill_seconds:.1f}s")

    with live_pipeline(ctx, "historical", prefill=fill, worker_cpu=ctx.args.server_cpu) as live:
        sql = f"SELECT count() FROM {live.table} WHERE event = '{IMPORT_EVENT}'"  # noqa: S608 - the bench's own names

        def imported() -> float:
            return float(asyncio.run(count(ctx.endpoints, sql)))

        assigned_at, assigned_wall = time.monotonic(), time.time()
        progress = Poller(imported, PROGRESS_EVERY).start()
        try:
            live_level = run_level(ctx, live, "50%, import running", "bench_live_import", SHARE, max_rate, seconds,
                                   warmup, senders)
            part.live = live_level
            began, ended = live_level.start_us / 1e6 - assigned_wall, live_level.last_sent_us / 1e6 - assigned_wall
            part.live_send_seconds = round(ended - began, 1)
            part.imported_at_live_start = _rows_at(progress.samples, began)
            part.imported_during_live = _rows_at(progress.samples, ended) - part.imported_at_live_start
            try:
                wait_until(lambda: imported() >= events, FINISH_TIMEOUT,
                           f"the import: fewer than {events:,} rows in {live.table}", interval=1.0,
                           logs=[live.worker])
                part.import_done_s = round(time.monotonic() - assigned_at, 1)
            except WaitTimeout as exc:
                part.problems.append(str(exc).splitlines()[0])
        finally:
            part.progress = progress.stop()
    step(f"historical: live p99 {part.live.p99_ms if part.live else 0:,.0f} ms with the import, "
         f"{baseline.p99_ms:,.0f} ms without; {part.imported_during_live:,} import events landed meanwhile")
    return part


def _rows_at(samples: list[tuple[float, float]], seconds: float) -> int:
    """The last sampled row count at or before ``seconds``."""
    before = [v for t, v in samples if t <= seconds]
    return int(before[-1]) if before else 0


def part_json(part: HistoricalPart) -> dict[str, Any]:
    doc = asdict(part)
    doc["live"] = level_json(part.live) if part.live else None
    doc["baseline"] = level_json(part.baseline) if part.baseline else None
    ratio = part.p99_ratio
    doc["targets"] = {} if ratio is None else {"live_p99_ratio": {
        "value": round(ratio, 3), "target": P99_RATIO_TARGET, "compare": "<=", "met": ratio <= P99_RATIO_TARGET}}
    doc["valid"] = part.valid
    return doc
