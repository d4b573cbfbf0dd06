"""A live pipeline for the latency parts: ``headwater gateway`` → Kafka → ``headwater worker`` → a table of its own.

``live_pipeline`` makes a fresh isolated topology (the default one under a prefix: its own
topics and consumer group) whose ``clickhouse`` sink writes a table made ``AS events``,
optionally fills its topics before the worker starts (``prefill``: the historical import),
starts the gateway and the worker (pinned to ``worker_cpu``), waits until the worker's group
holds its partitions, and stops both at the end (the table is dropped unless ``keep``; the
topics join the run's list to delete).

``latency`` reads the end-to-end latency of a load level straight from the rows: each event
carries its send time (``bench_sent_us``, wall clock µs) and ``inserted_at`` is ClickHouse's
``now64(6)`` at the insert, on the same machine's clock: no polling, no clock skew. ``to_kafka``
reads the live topic back for the first leg alone: send time → the envelope's Kafka timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import KafkaException

from bench.console import step
from bench.servers import Context
from bench.worker.consumers import create_table, drop_table
from headwater.stack.process import pick_port
from tests.support.clickhouse import count, select
from tests.support.kafka import RAW, assigned, messages
from tests.support.processes import Gateway, Process, headwater_command, stack_env, start_gateway
from tests.support.topology import Pipeline, fresh_prefix, isolated_pipeline, isolated_topology
from tests.support.waiting import WaitTimeout, wait_until

ASSIGN_TIMEOUT = 120.0  # worker spawn → its group holds the live topic's partitions
LANDED_TIMEOUT = 180.0  # the last send → every delivered event is a row
STALL_SECONDS = 60.0  # no new row for this long while some are missing: stuck


@dataclass(frozen=True)
class Live:
    """A running gateway and worker on an isolated topology, writing ``table``."""

    name: str
    pipeline: Pipeline
    table: str
    gateway: Gateway
    worker: Process

    @property
    def url(self) -> str:
        return self.gateway.url


def worker_process(name: str, pipeline: Pipeline, ctx: Context, cpu: int | None, log: Path) -> Process:
    """``headwater worker`` for ``pipeline`` on a web port of its own (``HEADWATER_WORKER_WEB_PORT``), not started."""
    port = pick_port(0)
    env = {**stack_env(ctx.endpoints), "HEADWATER_TOPOLOGY": str(pipeline.path), "HEADWATER_WORKER_WEB_PORT": str(port),
           "HEADWATER_STATE_DIR": str(ctx.run_dir / f"{name}-state")}
    return Process(name, headwater_command("worker", "--loglevel", "info"), log, env, url=f"http://127.0.0.1:{port}",
                   cpu=cpu)


def wait_assigned(ctx: Context, group: str, topics: set[str], watched: list[Process]) -> None:
    """Until ``group`` is stable and holds partitions of ``topics``."""
    wait_until(lambda: {t for t, _ in assigned(ctx.endpoints.kafka, group)} & topics, ASSIGN_TIMEOUT,
               f"group {group} was not assigned {sorted(topics)}", interval=0.2, logs=watched,
               ignore=(KafkaException,))


@contextlib.contextmanager
def live_pipeline(ctx: Context, name: str, prefill: Callable[[Pipeline], None] | None = None,
                  gateway_cpu: int | None = None, worker_cpu: int | None = None) -> Iterator[Live]:
    """See the module docstring."""
    prefix = fresh_prefix(f"bench_{name}_")
    table = f"{prefix}events"
    doc = isolated_topology(prefix)
    for sink in doc["sinks"]:
        if sink["type"] == "clickhouse" and sink["config"].get("records", "events") == "events":
            sink["config"]["table"] = table
    ctx.topics += list(doc["topics"])
    pipeline = isolated_pipeline(ctx.endpoints.kafka, ctx.run_dir / f"topology-{name}.yaml", doc)
    create_table(ctx.endpoints, table)
    started: list[Process] = []
    try:
        if prefill is not None:
            prefill(pipeline)
        gateway = start_gateway(ctx.endpoints, pipeline.path, ctx.run_dir, log=ctx.run_dir / f"{name}-gateway.log",
                                ready="/_readiness", cpu=gateway_cpu, timeout=60)
        started.append(gateway.process)
        worker = worker_process(f"{name}-worker", pipeline, ctx, worker_cpu, ctx.run_dir / f"{name}-worker.log")
        started.append(worker.start())
        wait_assigned(ctx, pipeline.group, {pipeline.topology.capture.topic}, [worker])
        step(f"{name}: gateway {gateway.url} (pid {gateway.process.pid}), worker pid {worker.pid} "
             f"(cpu{worker_cpu}) assigned; rows → {table}")
        yield Live(name, pipeline, table, gateway, worker)
    finally:
        for process in reversed(started):
            process.stop()
        if not ctx.args.keep_topics:
            drop_table(ctx.endpoints, table)


class _Rows:
    """The rows counted so far; raises when none came for ``STALL_SECONDS`` while some are missing."""

    def __init__(self, sql: str, ctx: Context, what: str) -> None:
        self.sql, self.ctx, self.what = sql, ctx, what
        self.rows = -1
        self.moved = time.monotonic()

    def __call__(self) -> int:
        rows = asyncio.run(count(self.ctx.endpoints, self.sql))
        if rows != self.rows:
            self.rows, self.moved = rows, time.monotonic()
        elif time.monotonic() - self.moved > STALL_SECONDS:
            raise WaitTimeout(f"{self.what}: no new row for {STALL_SECONDS:g}s ({rows:,} so far)")
        return rows


def landed(ctx: Context, live: Live, event: str, expected: int, timeout: float = LANDED_TIMEOUT) -> int:
    """Wait until ``expected`` distinct uuids of ``event`` are rows of ``live.table``; how many there are."""
    sql = f"SELECT uniqExact(uuid) FROM {live.table} WHERE event = '{event}'"  # noqa: S608 - the bench's own names
    rows = _Rows(sql, ctx, f"{event} in {live.table}")
    wait_until(lambda: rows() >= expected, timeout,
               lambda: f"{event}: {rows.rows:,} of {expected:,} events are rows of {live.table}",
               interval=0.5, logs=[live.worker, live.gateway.process])
    return rows.rows


def to_kafka(ctx: Context, live: Live, event: str, since_us: int) -> tuple[float, float]:
    """p50 and p99 ms of send time → the envelope's Kafka timestamp (the gateway's produce time), for ``event``'s
    events sent at or after ``since_us``: how much of the latency the SDK and the gateway account for."""
    topic = live.pipeline.topology.capture.topic
    delays: list[float] = []
    for message in messages(ctx.endpoints.kafka, topic, live.pipeline.partitions(topic)):
        produced_us = message.timestamp()[1] * 1000
        for e in RAW.decode(message.value() or b"")["events"]:
            if e["event"] == event and (sent := int(orjson.loads(e["properties"]).get("bench_sent_us", 0))) >= since_us:
                delays.append((produced_us - sent) / 1000)
    if not delays:
        return 0.0, 0.0
    delays.sort()
    return round(delays[len(delays) // 2], 1), round(delays[min(len(delays) - 1, int(0.99 * len(delays)))], 1)


@dataclass(frozen=True)
class Latency:
    events: int  # after the warm-up
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def latency(ctx: Context, table: str, event: str, since_us: int) -> Latency:
    """Send → ``inserted_at`` of ``event``'s rows sent at or after ``since_us``; the first insert of a uuid counts."""
    sent = "JSONExtractInt(properties, 'bench_sent_us')"
    per_uuid = (f"SELECT (toUnixTimestamp64Micro(min(inserted_at)) - any({sent})) / 1000 AS ms "  # noqa: S608
                f"FROM {table} WHERE event = '{event}' AND {sent} >= {since_us} GROUP BY uuid")
    sql = f"SELECT count(), quantilesExact(0.5, 0.95, 0.99)(ms), max(ms) FROM ({per_uuid})"  # noqa: S608
    row = asyncio.run(select(ctx.endpoints, sql)).rows[0]
    events, quantiles, worst = int(row[0]), row[1], row[2]
    if not events:
        return Latency(0, 0.0, 0.0, 0.0, 0.0)
    p50, p95, p99 = (round(float(q), 1) for q in quantiles)
    return Latency(events, p50, p95, p99, round(float(worst), 1))
