"""The worker half of ``make bench``: the same backlog through the worker, a Quix app and a plain loop, in turn.

Each consumer gets its table and consumer group (``bench.worker.consumers``) and is measured
by ``bench.worker.measure``; between two, the ClickHouse owner is given a moment to finish
the merges the previous one caused, so they are not billed to the next. Tables are dropped
at the end (``--keep-topics`` keeps them with the topics); the worker's fresh topics join the
run's list of topics to delete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bench.console import console, step
from bench.measure import Measurement
from bench.servers import Context
from bench.worker import report
from bench.worker.backlog import Backlog
from bench.worker.consumers import LABELS, Consumer, create_table, drop_table, prepare, worker_consumer
from bench.worker.measure import ConsumerResult, measure_consumer
from bench.worker.procfs import cpu_seconds

SETTLE_SECONDS = 20.0  # at most this long for the ClickHouse owner to go quiet between consumers
QUIET_SHARE = 0.05  # of a core


def settle(pid: int | None) -> None:
    """Wait (bounded) until ``pid`` uses less than ``QUIET_SHARE`` of a core over half a second."""
    if pid is None:
        return
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < QUIET_SHARE * 0.5:
            return


def run_consumers(ctx: Context, backlog: Backlog, names: Sequence[str], timeout: float) -> list[ConsumerResult]:
    """Each of ``names`` in turn on ``backlog``; their tables dropped at the end unless ``--keep-topics``."""
    step(f"worker bench: a backlog of {backlog.total:,} events ({backlog.origin}): "
         f"{', '.join(f'{t} {n:,}' for t, n in backlog.events.items() if n)}")
    results: list[ConsumerResult] = []
    tables: list[str] = []
    clickhouse = ctx.service_pids.get("clickhouse")
    try:
        for name in names:
            consumer = prepare(name, backlog, ctx.endpoints, ctx.run_dir, ctx.args.server_cpu, ctx.args.stage_calls)
            ctx.topics += consumer.created_topics
            create_table(ctx.endpoints, consumer.table)
            tables.append(consumer.table)
            settle(clickhouse)
            step(f"{name} ({LABELS[name]}): {backlog.total:,} events → {consumer.table}; log {consumer.process.log}")
            results.append(measure_consumer(consumer, backlog.total, ctx.endpoints, ctx.service_pids, timeout))
    finally:
        if not ctx.args.keep_topics:
            for table in tables:
                drop_table(ctx.endpoints, table)
    return results


def finish_worker_half(ctx: Context, backlog: Backlog, results: list[ConsumerResult], gateway: Measurement | None,
                       started: datetime) -> bool:
    """Print the worker half's table and targets, write ``worker.json``; whether every consumer's run is valid."""
    found = report.targets(results, gateway)
    report.print_report(backlog, results, found, gateway, ctx.args)
    latest = ctx.settings.state_dir.resolve() / "bench" / "worker.json"
    for path in (latest, ctx.run_dir / "worker.json"):
        report.write_json(path, backlog, results, found, gateway, ctx.args, started)
    console.print(f"written to {latest}")
    return bool(results) and all(r.valid for r in results)


def drain_edited(ctx: Context, backlog: Backlog, name: str, label: str,
                 edit: Callable[[dict[str, Any]], dict[str, Any]] | None,
                 settled: Callable[[Consumer], bool] | None = None) -> ConsumerResult:
    """One ``headwater worker`` (the default topology, changed by ``edit``) draining ``backlog`` into a
    table of its own, measured (and, with ``settled``, until it says the worker's other work is done)."""
    consumer = worker_consumer(name, backlog, ctx.endpoints, ctx.run_dir, ctx.args.server_cpu, edit)
    ctx.topics += consumer.created_topics
    create_table(ctx.endpoints, consumer.table)
    try:
        settle(ctx.service_pids.get("clickhouse"))
        step(f"{label}: {backlog.total:,} events → {consumer.table}; log {consumer.process.log}")
        return measure_consumer(consumer, backlog.total, ctx.endpoints, ctx.service_pids, ctx.args.consumer_timeout,
                                settled=None if settled is None else lambda: settled(consumer))
    finally:
        if not ctx.args.keep_topics:
            drop_table(ctx.endpoints, consumer.table)
