"""One consumer from the backlog to its last row in ClickHouse: time, CPU, memory, and the row check.

The clock and the CPU counters start when the consumer's group holds the backlog's
partitions (``tests.support.kafka.assigned``): from then on it only consumes. What came
before (imports, connections, joining the group) is reported as ``startup_s``, and its CPU is
in ``cpu_total_s``. They stop when ``SELECT count()`` of the consumer's table reaches the
backlog's event count (and ``FINAL``, one row per uuid, does too): the last row is queryable.
The consumer's CPU is its process's (every thread, reaped children too, ``/proc/<pid>/stat``);
the ClickHouse owner's (``headwater.stack.chdb_server``), Kafka's, Postgres's and Redis's are read the same way,
with their live children (Postgres's backends), and so is the CPU of processes outside the bench
(``foreign``, as for the gateway rows, less those children).
Then the consumer is stopped (SIGTERM) and the table counted again with ``FINAL``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from confluent_kafka import KafkaException

from bench.console import step
from bench.cpu import CpuSampler, CpuUse
from bench.worker.consumers import Consumer
from bench.worker.procfs import cpu_seconds, memory_mb, tree_cpu_seconds
from headwater.runtime.settings import Endpoints
from tests.support.clickhouse import count, select
from tests.support.kafka import assigned
from tests.support.metrics import scrape
from tests.support.waiting import WaitTimeout, wait_until

ASSIGN_TIMEOUT = 120.0  # spawn → the group holds the backlog's partitions
STALL_SECONDS = 60.0  # no new row for this long: the consumer is stuck
PROGRESS_SECONDS = 5.0


@dataclass
class ConsumerResult:
    name: str
    expected: int  # events in the backlog
    rows: int = 0  # rows of its table, FINAL (one per uuid), after it stopped
    startup_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cpu_total_s: float = 0.0  # spawn → done, start-up included
    peak_rss_mb: float = 0.0  # VmHWM
    start_rss_mb: float = 0.0  # VmRSS when it was assigned the backlog (imports and connections done)
    end_rss_mb: float = 0.0  # VmRSS when done
    clickhouse_cpu_s: float | None = None
    kafka_cpu_s: float | None = None
    postgres_cpu_s: float | None = None  # the postmaster and its backends (the persons stage's reads and writes)
    redis_cpu_s: float | None = None
    foreign_percent: float = 0.0  # CPU of processes outside the bench over the window, % of one core
    dropped: int = 0  # by the stages
    failed: int = 0  # dead-lettered, or a Retry/Errored the baselines do not retry
    counters: dict[str, Any] = field(default_factory=dict)  # the worker's metrics or a baseline's stats
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def events_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0

    @property
    def events_per_cpu_s(self) -> float:
        return self.rows / self.cpu_s if self.cpu_s else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.cpu_s / self.rows if self.rows else 0.0

    @property
    def core_percent(self) -> float:
        return 100 * self.cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def clickhouse_us_per_row(self) -> float | None:
        return None if self.clickhouse_cpu_s is None or not self.rows else 1e6 * self.clickhouse_cpu_s / self.rows


class _Progress:
    """Prints the rows so far every ``PROGRESS_SECONDS``; raises when none came for ``STALL_SECONDS``."""

    def __init__(self, consumer: Consumer, expected: int) -> None:
        self.consumer = consumer
        self.expected = expected
        self.rows = 0
        self.started = self.printed = self.moved = time.monotonic()
        self.printed_rows = 0

    def update(self, rows: int) -> None:
        now = time.monotonic()
        if rows != self.rows:
            self.rows, self.moved = rows, now
        if now - self.moved > STALL_SECONDS:
            raise WaitTimeout(f"{self.consumer.name}: no new row in {self.consumer.table} for {STALL_SECONDS:g}s "
                              f"({rows:,} of {self.expected:,}); its log ends:\n{self.consumer.process.tail(20)}")
        if now - self.printed >= PROGRESS_SECONDS:
            rate = (rows - self.printed_rows) / (now - self.printed)
            step(f"  {self.consumer.name}: {rows:,} of {self.expected:,} rows ({rate:,.0f} rows/s)")
            self.printed, self.printed_rows = now, rows


async def _wait_rows(endpoints: Endpoints, consumer: Consumer, expected: int, timeout: float) -> None:
    progress = _Progress(consumer, expected)
    table = consumer.table

    async def reached() -> bool:
        rows = await count(endpoints, f"SELECT count() FROM {table}")  # noqa: S608 - the bench's own table
        progress.update(rows)
        if rows < expected:
            return False
        # more rows than events: some came twice (a redelivery); done once every uuid is there
        final = f"SELECT count() FROM {table} FINAL"  # noqa: S608 - the bench's own table
        return rows == expected or await count(endpoints, final) >= expected

    await wait_until(reached, timeout, lambda: f"{consumer.name}: {progress.rows:,} of {expected:,} rows in {table}",
                     interval=0.25, logs=[consumer.process])


SERVICES = ("clickhouse", "kafka", "postgres", "redis")
PERSON_LOOKUP_SOURCES = ("cache", "postgres", "new")  # streams.persons.store: the labels of PERSON_LOOKUPS


def _services(service_pids: dict[str, int]) -> dict[str, float]:
    return {name: tree_cpu_seconds(pid) for name, pid in service_pids.items() if name in SERVICES}


def person_lookups_key(source: str) -> str:
    """The key of ``headwater_stream_person_lookups_total{source=…}`` in ``ConsumerResult.counters``."""
    return f"headwater_stream_person_lookups_total{{source={source}}}"


def _foreign_percent(use: CpuUse, services: dict[str, float]) -> float:
    """Both cores' busy time less interrupts, less the consumer, this process and the stack's services: % of a core
    (the gateway rows' ``foreign``). ``services``: their CPU seconds with their children (``tree_cpu_seconds``),
    which replace what ``use`` counted for them (their own threads only)."""
    busy = sum(use.busy_percent[c] - use.irq_percent[c] for c in use.busy_percent) / 100 * use.wall_seconds
    accounted = sum(v for name, v in use.process_seconds.items() if name not in services) + sum(services.values())
    return max(0.0, 100 * (busy - accounted) / max(use.wall_seconds, 1e-9))


def _counters(consumer: Consumer, result: ConsumerResult) -> None:
    """Drops and failures as the consumer counted them: the worker's /metrics, a baseline's stats file."""
    if consumer.stats is None:
        try:
            metrics = scrape(consumer.process.url + "/metrics")
        except httpx.HTTPError as exc:
            result.problems.append(f"the worker's /metrics did not answer ({exc}): its drops are unknown")
            return
        names = ("headwater_stream_events_processed_total", "headwater_stream_events_dropped_total",
                 "headwater_stream_events_dead_lettered_total", "headwater_sink_rows_written_total",
                 "headwater_sink_rows_rejected_total", "headwater_sink_retries_total",
                 "headwater_stream_stage_retries_total")
        result.counters = {name: int(metrics.value(name) or 0) for name in names}
        result.counters |= {person_lookups_key(source): int(metrics.value(
            "headwater_stream_person_lookups_total", source=source) or 0) for source in PERSON_LOOKUP_SOURCES}
        for name in ("headwater_stream_person_write_conflicts_total",
                     "headwater_stream_person_cache_write_failures_total"):
            result.counters[name] = int(metrics.value(name) or 0)
        result.dropped = result.counters["headwater_stream_events_dropped_total"]
        result.failed = (result.counters["headwater_stream_events_dead_lettered_total"]
                         + result.counters["headwater_sink_rows_rejected_total"])
    elif consumer.stats.exists():
        result.counters = json.loads(consumer.stats.read_text())
        result.dropped = int(result.counters["dropped"])
        result.failed = int(result.counters["failed"])


def measure_consumer(consumer: Consumer, expected: int, endpoints: Endpoints, service_pids: dict[str, int],
                     timeout: float, settled: Callable[[], bool] | None = None) -> ConsumerResult:
    """Start ``consumer``, wait until its table holds ``expected`` rows (and ``settled`` says its other
    work is done too, if given), stop it; see the module docstring."""
    result = ConsumerResult(consumer.name, expected)
    process = consumer.process
    spawned = time.monotonic()
    process.start()
    step(f"{consumer.name}: started (pid {process.pid}, pinned to cpu{process.cpu}); waiting for group "
         f"{consumer.group} to be assigned {', '.join(consumer.pipeline.pipeline_sources())}")
    sources = set(consumer.pipeline.pipeline_sources())
    try:
        wait_until(lambda: {t for t, _ in assigned(endpoints.kafka, consumer.group)} & sources, ASSIGN_TIMEOUT,
                   f"{consumer.name}: group {consumer.group} was not assigned the backlog's partitions",
                   interval=0.1, logs=[process], ignore=(KafkaException,))
        begun, cpu_begun, services_begun = time.monotonic(), cpu_seconds(process.pid), _services(service_pids)
        result.startup_s = round(begun - spawned, 2)
        result.start_rss_mb = round(memory_mb(process.pid).get("VmRSS", 0.0), 1)
        sampler = CpuSampler({"consumer": process.pid, "bench": os.getpid(), **service_pids})
        step(f"{consumer.name}: assigned after {result.startup_s:.1f}s ({cpu_begun:.1f} CPU-s so far); "
             f"consuming {expected:,} events into {consumer.table}")
        asyncio.run(_wait_rows(endpoints, consumer, expected, timeout))
        if settled is not None:
            wait_until(settled, timeout, f"{consumer.name}: its windows did not catch up", interval=0.25,
                            logs=[process], ignore=(KafkaException,))
        done, cpu_done, services_done = time.monotonic(), cpu_seconds(process.pid), _services(service_pids)
        spent = {name: round(services_done[name] - services_begun[name], 2) for name in services_done}
        result.foreign_percent = round(_foreign_percent(sampler.stop(), spent), 1)
        memory = memory_mb(process.pid)
        result.wall_s = round(done - begun, 2)
        result.cpu_s = round(cpu_done - cpu_begun, 2)
        result.cpu_total_s = round(cpu_done, 2)
        result.peak_rss_mb = round(memory.get("VmHWM", 0.0), 1)
        result.end_rss_mb = round(memory.get("VmRSS", 0.0), 1)
        result.clickhouse_cpu_s, result.kafka_cpu_s = spent.get("clickhouse"), spent.get("kafka")
        result.postgres_cpu_s, result.redis_cpu_s = spent.get("postgres"), spent.get("redis")
        _counters(consumer, result)
    except WaitTimeout as exc:
        result.problems.append(str(exc).splitlines()[0])
        step(f"[red]{consumer.name}: {exc}[/]")
    finally:
        died = not process.running
        code = process.stop()
    if died:
        result.problems.append(f"{consumer.name} exited with {code} before it was stopped: see {process.log}")
    if consumer.stats is not None and consumer.stats.exists():  # it wrote its last stats on the way out
        _counters(consumer, result)
    final = f"SELECT count(), uniqExact(uuid) FROM {consumer.table} FINAL"  # noqa: S608 - the bench's own table
    answer = asyncio.run(select(endpoints, final))
    result.rows, distinct = (int(v) for v in answer.rows[0])
    if result.rows != expected or distinct != expected:
        result.problems.append(f"{consumer.table} holds {result.rows:,} rows ({distinct:,} uuids) with FINAL, "
                               f"the backlog {expected:,} events")
    if result.dropped or result.failed:
        result.problems.append(f"the stages dropped {result.dropped:,} and failed {result.failed:,} events "
                               "(the bench's events should all pass)")
    step(f"{consumer.name}: {result.rows:,} rows in {result.wall_s:.1f}s, {result.events_per_s:,.0f} events/s, "
         f"{result.cpu_us_per_event:.1f} CPU µs/event, peak RSS {result.peak_rss_mb:.0f} MB"
         + (f"; [red]{'; '.join(result.problems)}[/]" if result.problems else ""))
    return result
