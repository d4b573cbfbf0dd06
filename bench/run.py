"""make bench: the gateway's throughput against the ceiling of a bare Starlette app, same machine, same client.

What it does, in one run (bench/README.md explains every number):

1. Brings up the local stack with ``headwater.stack.manager.up`` (reusing services that already
   run; ``tests.support.stack``), migrates Postgres and ClickHouse, creates a project ``bench``
   with a fresh token.
2. Ceiling: serves ``bench/baseline.py`` (Starlette + uvicorn, the gateway's uvicorn options),
   pinned with ``taskset`` to the server core, and loads it with ``wrk`` pinned to the client
   core: single events to ``/e/`` and 50-event batches to ``/batch/``.
3. Gateway: for each workload, an isolated topology (own topics, prefix ``bench<hex>_<workload>_``)
   is migrated to Kafka, ``headwater gateway`` is started on the server core, loaded the same
   way, its ``/metrics`` read, stopped (SIGTERM: the producer flushes), and every envelope of its
   capture and dead-letter topics is read back and decoded: the events in Kafka must equal the
   200 answers times the events per request.
4. Worker (``bench.worker``): the batch workload's capture topics, at least ``--backlog-min``
   events, are the backlog that ``headwater worker``, a Quix Streams app and a plain
   confluent-kafka loop each take to rows in ClickHouse, one after another on the server core:
   events per CPU-second, peak RSS, the ClickHouse owner's CPU per row (the ``throughput``
   part). Then ``persons`` (the worker with and without its persons stage on a backlog of
   known and new persons, ``bench.worker.persons``) and the live parts (``bench.worker.parts``):
   ``scaling`` (the same backlog drained by one worker, then by two in one group), ``latency``
   (the real PostHog SDK through a gateway and a worker at 50% and 90% of the worker's maximum;
   the 50% level is also the RSS ``soak``) and ``historical`` (an import waiting beside live traffic at 50%).
   ``--worker`` runs only this half (with the gateway's batch measurement it needs),
   ``--no-worker`` skips it, ``--worker-parts``/``--skip-worker-parts`` choose its parts.
5. Prints the tables, writes them as JSON to ``<state dir>/bench/latest.json`` and
   ``worker.json``, deletes the topics (and tables) it created and stops the stack services it
   started (only those).

A run with a non-2xx answer, a socket error or a Kafka count that does not match is invalid
(exit status 1). ``--profile single|batch`` instead runs that gateway workload under cProfile
and prints the top functions of Headwater's code.

The pieces: ``bench.measure`` (workloads, wrk, one measurement), ``bench.cpu`` (where the CPU
went), ``bench.servers`` (the ceiling, the ladder and the gateway, and the Kafka check),
``bench.report`` (targets, table, JSON), ``bench.profiling`` (``--profile``), ``bench.worker``
(the worker half). Processes, the
stack, isolated topologies and reading Kafka are the tests' own helpers (``tests.support``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/run.py`: bench and tests.support are packages of the repository

from bench.console import console, step  # noqa: E402
from bench.measure import WORKLOADS, Measurement  # noqa: E402
from bench.profiling import print_profile, pyinstrument_to_pstats  # noqa: E402
from bench.report import print_report, summary, write_json  # noqa: E402
from bench.servers import Context, ceiling, gateway, ladder  # noqa: E402
from bench.worker.backlog import Backlog, gateway_backlog, kept_backlog  # noqa: E402
from bench.worker.consumers import CONSUMERS  # noqa: E402
from bench.worker.measure import ConsumerResult  # noqa: E402
from bench.worker.parts import add_options, finish_parts, run_parts, selected_parts  # noqa: E402
from bench.worker.parts_report import PartsOutcome  # noqa: E402
from bench.worker.suite import finish_worker_half, run_consumers  # noqa: E402
from bench.worker.work import STAGE_CALLS, STAGE_CALLS_HELP  # noqa: E402
from headwater.runtime.projects import create_project  # noqa: E402
from headwater.runtime.settings import Settings  # noqa: E402
from headwater.stack import manager  # noqa: E402
from tests.support.kafka import delete_topics  # noqa: E402
from tests.support.stack import local_stack  # noqa: E402


def service_pids(settings: Settings) -> dict[str, int]:
    """The stack's services by name → pid (their CPU is accounted, not foreign)."""
    return {s.name: s.pid for s in manager.status(settings) if s.pid is not None and s.state == "running"}


def check_tools(args: argparse.Namespace) -> None:
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"make bench needs {' and '.join(missing)} (Debian: apt-get install wrk util-linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if args.server_cpu == args.client_cpu or {args.server_cpu, args.client_cpu} - set(cpus):
        raise SystemExit(f"--server-cpu and --client-cpu must be two different CPUs of {cpus}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before each (default 3)")
    parser.add_argument("--connections", type=int, default=None,
                        help="wrk connections for every workload (default: 128 for single, 32 for batch)")
    parser.add_argument("--server-cpu", type=int, default=0, help="the core the server is pinned to (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="the core wrk is pinned to (default 1)")
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["single", "batch"])
    parser.add_argument("--profile", choices=sorted(WORKLOADS),
                        help="only run this gateway workload under cProfile and print its hot spots")
    parser.add_argument("--ladder", action="store_true",
                        help="also measure the ceiling plus the gateway's middleware, body read and Kafka write")
    parser.add_argument("--profiler", choices=["cprofile", "pyinstrument"], default="cprofile",
                        help="with --profile: cProfile (stdlib, deterministic, slows calls) or pyinstrument "
                             "(sampling; pip install it into .venv first)")
    parser.add_argument("--keep-topics", action="store_true",
                        help="do not delete the topics (and the worker half's ClickHouse tables) this run created")
    parser.add_argument("--keep-stack", action="store_true", help="leave services this run started running")
    worker = parser.add_argument_group("the worker half (bench.worker)")
    worker.add_argument("--worker", action="store_true",
                        help="only the worker half: the gateway's batch workload fills the backlog (for the "
                             "throughput and scaling parts), then its parts")
    worker.add_argument("--no-worker", action="store_true", help="skip the worker half")
    worker.add_argument("--backlog-min", type=int, default=300_000,
                        help="at least this many events in the backlog (default 300,000)")
    worker.add_argument("--backlog", type=Path, metavar="TOPOLOGY",
                        help="reuse the capture topics an earlier --keep-topics run left (its topology-batch.yaml) "
                             "instead of running the gateway: only the worker half, without the gateway figure")
    worker.add_argument("--consumers", nargs="+", choices=CONSUMERS, default=list(CONSUMERS),
                        help="which consumers take the backlog, in this order (default: all three)")
    worker.add_argument("--stage-calls", choices=STAGE_CALLS, default="event",
                        help="how the Quix app and the plain loop call the stages: " + STAGE_CALLS_HELP)
    worker.add_argument("--consumer-timeout", type=float, default=300.0,
                        help="seconds each consumer may take from assignment to its last row (default 300)")
    add_options(worker)
    args = parser.parse_args(argv)
    if args.worker and args.no_worker:
        parser.error("--worker and --no-worker exclude each other")
    args.parts = selected_parts(args)
    return args


@dataclass
class Outcome:
    """What the run measured: the gateway's rows, and the worker half's backlog and consumers."""

    results: list[Measurement] = field(default_factory=list)
    backlog: Backlog | None = None
    gateway_batch: Measurement | None = None  # the measurement that filled the backlog
    consumers: list[ConsumerResult] = field(default_factory=list)
    throughput: bool = False  # the worker half's throughput part ran (worker vs Quix vs plain loop)
    parts: PartsOutcome | None = None  # scaling, latency and soak, historical


def profile(ctx: Context) -> int:
    args = ctx.args
    suffix = ".pyisession" if args.profiler == "pyinstrument" else ".prof"
    prof = ctx.run_dir / f"gateway-{args.profile}{suffix}"
    m = gateway(ctx, WORKLOADS[args.profile], profile_to=prof)
    console.print(f"under {args.profiler} (not a throughput number): {m.requests_per_s:,.0f} req/s, "
                  f"{m.events_per_s:,.0f} events/s; problems: {m.problems or 'none'}")
    answered = m.kafka["gateway_200_answers"] if m.kafka else m.requests
    print_profile(pyinstrument_to_pstats(prof) if args.profiler == "pyinstrument" else prof, 30, answered)
    return 0 if m.valid else 1


def measure_all(ctx: Context, worker_only: bool, with_worker: bool) -> Outcome:
    args, out = ctx.args, Outcome()
    parts = args.parts if with_worker else []
    out.throughput = "throughput" in parts
    needs_backlog = out.throughput or "scaling" in parts
    if not worker_only:
        out.results += ceiling(ctx)
        if args.ladder:
            out.results += ladder(ctx)
    for name in args.workloads:
        if name == "batch" and needs_backlog and args.backlog is None:  # the same measurement, its topics kept
            out.gateway_batch, out.backlog = gateway_backlog(ctx, args.backlog_min)
            out.results.append(out.gateway_batch)
        else:
            out.results.append(gateway(ctx, WORKLOADS[name]))
    if needs_backlog and out.backlog is None:
        if args.backlog is not None:
            out.backlog = kept_backlog(ctx, args.backlog)
        else:
            out.gateway_batch, out.backlog = gateway_backlog(ctx, args.backlog_min)
            if out.throughput:
                out.results.append(out.gateway_batch)
            elif not out.gateway_batch.valid:
                raise SystemExit(f"the scaling part's backlog is invalid: {'; '.join(out.gateway_batch.problems)}")
    if out.throughput:
        assert out.backlog is not None
        out.consumers = run_consumers(ctx, out.backlog, args.consumers, args.consumer_timeout)
    if any(p != "throughput" for p in parts):
        out.parts = run_parts(ctx, parts, out.backlog, out.consumers)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    check_tools(args)
    worker_only = args.worker or args.backlog is not None
    if worker_only:  # the gateway's batch row only with the throughput part (scaling alone makes its own backlog)
        args.workloads = ["batch"] if args.backlog is None and "throughput" in args.parts else []
    settings = Settings()
    started = datetime.now(UTC)
    run_dir = settings.state_dir.resolve() / "bench" / started.strftime("%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=True)
    with local_stack(settings, lambda message: step(f"  {message}"), args.keep_stack) as endpoints:
        suffix = uuid.uuid4().hex
        token = f"phc_bench_{suffix}"
        project = asyncio.run(create_project(endpoints.postgres, f"bench-{suffix[:8]}", token))  # names are unique
        step(f"project {project.name} (id {project.id}), token {token}; logs in {run_dir}")
        ctx = Context(args, settings, endpoints, token, run_dir, service_pids(settings))
        try:
            if args.profile:
                return profile(ctx)
            out = measure_all(ctx, worker_only, with_worker=not args.no_worker)
        finally:
            if not args.keep_topics:
                for topic, error in delete_topics(endpoints.kafka, ctx.topics).items():
                    console.print(f"[yellow]could not delete topic {topic}: {error}[/]")
    valid = True
    if out.results:
        targets = summary(out.results)
        print_report(out.results, targets, args)
        latest = settings.state_dir.resolve() / "bench" / "latest.json"
        write_json(latest, out.results, targets, args, started)
        write_json(run_dir / "result.json", out.results, targets, args, started)
        console.print(f"written to {latest}")
        valid = all(m.valid for m in out.results)
    if out.throughput and out.backlog is not None:
        valid = finish_worker_half(ctx, out.backlog, out.consumers, out.gateway_batch, started) and valid
    if out.parts is not None:
        valid = finish_parts(ctx, out.parts, started) and valid
    if not valid:
        console.print("[red]this run is INVALID: see the problems above[/]")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
