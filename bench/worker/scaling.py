"""1 vs 2 workers: the same backlog drained by one ``headwater worker``, then by two in one consumer group.

Each run gets a fresh consumer group and table (``bench.worker.consumers.consumer_topology``:
the backlog's topics as the pipeline's sources, fresh processed/dead-letter/warnings topics,
the ``clickhouse`` sink writing the run's table); with two workers both processes use the same
topology, so the same group and the same table, each with its own web port
(``HEADWATER_WORKER_WEB_PORT``) and state directory. The first worker is pinned to the server
core, the second to the client core (``taskset -c 0``, ``-c 1`` by default): with two workers
on a two-core machine, ClickHouse, Kafka, Postgres and Redis share those cores with them.

The clock starts when the group first holds the backlog's partitions (any member) and stops
when ``SELECT count()`` reaches the backlog and ``FINAL`` (one row per uuid) does too, so the
two workers' join and rebalance count against them. ``join s`` is spawn → every member holds
partitions. The ratio is events/s with two ÷ with one; the target ≥ 1.8 holds "when partitions
allow": the default topology's topics have 4 partitions, so each of two workers gets 2.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from bench.console import step
from bench.cpu import CpuSampler
from bench.servers import Context
from bench.worker.backlog import Backlog
from bench.worker.consumers import consumer_topology, create_table, drop_table
from bench.worker.live import worker_process
from bench.worker.procfs import cpu_seconds, memory_mb
from bench.worker.sampling import cpu_shares
from bench.worker.suite import settle
from tests.support.clickhouse import count, select
from tests.support.processes import Process
from tests.support.topology import fresh_prefix, isolated_pipeline
from tests.support.waiting import WaitTimeout, wait_until

ASSIGN_TIMEOUT = 120.0
STALL_SECONDS = 60.0
PROGRESS_SECONDS = 5.0
RATIO_TARGET = 1.8  # events/s with 2 workers ÷ with 1


@dataclass
class ScalingRun:
    workers: int
    expected: int
    rows: int = 0  # FINAL, after the workers stopped
    join_s: float = 0.0  # spawn → every member holds partitions
    wall_s: float = 0.0  # the group first holds the backlog → the last row queryable
    spawn_to_done_s: float = 0.0
    cpu_s: list[float] = field(default_factory=list)  # per worker, over the wall window
    peak_rss_mb: list[float] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)  # source partitions per member once all joined
    cpu_percent: dict[str, float] = field(default_factory=dict)  # over the wall window, % of one core
    busy_percent: dict[str, float] = field(default_factory=dict)  # per core
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def events_per_s(self) -> float:
        return self.expected / self.wall_s if self.wall_s else 0.0


@dataclass
class ScalingPart:
    backlog_events: int
    backlog_origin: str
    runs: list[ScalingRun] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return bool(self.runs) and all(r.valid for r in self.runs)

    @property
    def ratio(self) -> float | None:
        by = {r.workers: r for r in self.runs if r.valid}
        if 1 not in by or 2 not in by or not by[1].events_per_s:
            return None
        return by[2].events_per_s / by[1].events_per_s

    def one_worker_rate(self) -> float | None:
        """One worker's events/s on the backlog: a maximum rate for the latency parts."""
        one = next((r for r in self.runs if r.workers == 1 and r.valid), None)
        return one.events_per_s if one else None


def _members(bootstrap: str, group: str, topics: set[str]) -> list[int]:
    """Per member of the stable ``group``: how many partitions of ``topics`` it holds (empty while not stable)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    if description.state != ConsumerGroupState.STABLE:
        return []
    return [sum(1 for tp in (m.assignment.topic_partitions if m.assignment else []) if tp.topic in topics)
            for m in description.members]


def _drain(ctx: Context, backlog: Backlog, workers: int, timeout: float) -> ScalingRun:
    run = ScalingRun(workers, backlog.total)
    prefix = fresh_prefix(f"bench_scale{workers}_")
    table = f"{prefix}events"
    doc = consumer_topology(backlog, prefix, table)
    ctx.topics += [t for t in doc["topics"] if t not in backlog.sources]
    pipeline = isolated_pipeline(ctx.endpoints.kafka, ctx.run_dir / f"topology-scale{workers}.yaml", doc)
    create_table(ctx.endpoints, table)
    settle(ctx.service_pids.get("clickhouse"))
    cores = (ctx.args.server_cpu, ctx.args.client_cpu)
    processes = [worker_process(f"scale{workers}-worker{i}", pipeline, ctx, cpu=cores[i],
                                log=ctx.run_dir / f"scale{workers}-worker{i}.log") for i in range(workers)]
    sources = set(backlog.sources)
    try:
        spawned = time.monotonic()
        for process in processes:
            process.start()
        step(f"scaling · {workers} worker{'s' if workers > 1 else ''}: pids "
             f"{', '.join(f'{p.pid} (cpu{p.cpu})' for p in processes)}, group {pipeline.group}, table {table}")
        wait_until(lambda: any(_members(ctx.endpoints.kafka, pipeline.group, sources)), ASSIGN_TIMEOUT,
                   f"group {pipeline.group} was not assigned the backlog", interval=0.1, logs=processes,
                   ignore=(KafkaException,))
        begun = time.monotonic()
        cpu_begun = [cpu_seconds(p.pid) for p in processes]
        sampler = CpuSampler({**{f"worker{i}": p.pid for i, p in enumerate(processes)}, "bench": os.getpid(),
                              **ctx.service_pids})

        def all_joined() -> list[int]:
            held = _members(ctx.endpoints.kafka, pipeline.group, sources)
            return held if len(held) == workers and all(held) else []

        run.partitions = wait_until(all_joined, ASSIGN_TIMEOUT, f"not all {workers} workers of {pipeline.group} "
                                    "hold backlog partitions", interval=0.1, logs=processes, ignore=(KafkaException,))
        run.join_s = round(time.monotonic() - spawned, 2)
        _wait_rows(ctx, table, backlog.total, timeout, processes)
        done = time.monotonic()
        run.wall_s = round(done - begun, 2)
        run.spawn_to_done_s = round(done - spawned, 2)
        use = sampler.stop()
        run.cpu_percent, run.busy_percent = cpu_shares(use), use.busy_percent
        run.cpu_s = [round(cpu_seconds(p.pid) - c, 2) for p, c in zip(processes, cpu_begun, strict=True)]
        run.peak_rss_mb = [round(memory_mb(p.pid).get("VmHWM", 0.0), 1) for p in processes]
    except WaitTimeout as exc:
        run.problems.append(str(exc).splitlines()[0])
        step(f"[red]scaling · {workers}: {exc}[/]")
    finally:
        died = [p for p in processes if p.proc is not None and not p.running]
        for process in processes:
            process.stop()
        run.problems += [f"{p.name} exited with {p.exit_code()} before it was stopped: see {p.log}" for p in died]
        final = asyncio.run(select(ctx.endpoints, f"SELECT count(), uniqExact(uuid) FROM {table} FINAL"))  # noqa: S608
        run.rows, distinct = (int(v) for v in final.rows[0])
        if not ctx.args.keep_topics:
            drop_table(ctx.endpoints, table)
    if run.rows != backlog.total or distinct != backlog.total:
        run.problems.append(f"{table} holds {run.rows:,} rows ({distinct:,} uuids) with FINAL, "
                            f"the backlog {backlog.total:,} events")
    step(f"scaling · {workers}: {run.rows:,} rows in {run.wall_s:.1f}s, {run.events_per_s:,.0f} events/s "
         f"(joined after {run.join_s:.1f}s, partitions per member {run.partitions})"
         + (f"; [red]{'; '.join(run.problems)}[/]" if run.problems else ""))
    return run


def _wait_rows(ctx: Context, table: str, expected: int, timeout: float, processes: list[Process]) -> None:
    state = {"rows": 0, "moved": time.monotonic(), "printed": time.monotonic()}

    def reached() -> bool:
        rows = asyncio.run(count(ctx.endpoints, f"SELECT count() FROM {table}"))  # noqa: S608 - the bench's own
        now = time.monotonic()
        if rows != state["rows"]:
            state["rows"], state["moved"] = rows, now
        elif now - state["moved"] > STALL_SECONDS:
            raise WaitTimeout(f"no new row in {table} for {STALL_SECONDS:g}s ({rows:,} of {expected:,})")
        if now - state["printed"] >= PROGRESS_SECONDS:
            step(f"  scaling: {rows:,} of {expected:,} rows")
            state["printed"] = now
        if rows < expected:
            return False
        final = f"SELECT count() FROM {table} FINAL"  # noqa: S608 - the bench's own table
        return rows == expected or asyncio.run(count(ctx.endpoints, final)) >= expected

    wait_until(reached, timeout, lambda: f"{state['rows']:,} of {expected:,} rows in {table}", interval=0.25,
               logs=processes)


def run_scaling(ctx: Context, backlog: Backlog, timeout: float) -> ScalingPart:
    """One worker, then two, on ``backlog``; see the module docstring."""
    part = ScalingPart(backlog.total, backlog.origin)
    for workers in (1, 2):
        part.runs.append(_drain(ctx, backlog, workers, timeout))
    return part


def part_json(part: ScalingPart) -> dict[str, Any]:
    ratio = part.ratio
    return {
        "backlog_events": part.backlog_events, "backlog_origin": part.backlog_origin, "valid": part.valid,
        "runs": [{**asdict(r), "events_per_s": round(r.events_per_s, 1), "valid": r.valid} for r in part.runs],
        "targets": {} if ratio is None else {"two_vs_one": {
            "value": round(ratio, 3), "target": RATIO_TARGET, "compare": ">=", "met": ratio >= RATIO_TARGET}},
        "caveat": "two cores: with two workers pinned to cpu0 and cpu1, ClickHouse, Kafka, Postgres and Redis "
                  "share their cores",
    }
