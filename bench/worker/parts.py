"""The worker half's parts after the throughput one: which run, in which order, with which maximum rate.

``PARTS``, in the order a run takes them: ``throughput`` (``bench.worker.suite``: worker vs
Quix vs a plain loop), ``persons`` (``bench.worker.persons``: the worker with and without its
persons stage on a backlog of known and new persons), ``windows`` (``bench.worker.windows``: the
worker with and without its ``event_rollups`` window), ``sinks`` (``bench.worker.sink_throughput``: each sink
driven as the worker drives it against a plain loop writing the same records to the same destination),
``scaling`` (1 vs 2 workers),
``latency`` (50% and 90% of the worker's maximum through the real SDK; its 50% level is also
the ``soak``) and ``historical`` (an import beside live traffic at 50%). ``soak`` is accepted
as another name for ``latency``.

The maximum events/s the latency parts load against: ``--max-rate`` if given, else the worker's
events/s from this run's throughput part, else this run's one-worker scaling run (the same
measurement: one ``headwater worker`` on the server core draining a backlog), else the worker
row of the last ``worker.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from bench.console import console, step
from bench.servers import Context
from bench.worker import parts_report
from bench.worker.backlog import Backlog
from bench.worker.historical import run_historical
from bench.worker.latency import run_latency
from bench.worker.measure import ConsumerResult
from bench.worker.parts_report import PartsOutcome
from bench.worker.persons import run_persons
from bench.worker.scaling import run_scaling
from bench.worker.sink_throughput import CASES, run_sinks
from bench.worker.windows import run_windows

PARTS = ("throughput", "persons", "windows", "sinks", "scaling", "latency", "historical")
ALIASES = {"soak": "latency"}


def selected_parts(args: argparse.Namespace) -> list[str]:
    """``--worker-parts`` less ``--skip-worker-parts``, aliases resolved, in ``PARTS`` order."""
    wanted = {ALIASES.get(p, p) for p in args.worker_parts} - {ALIASES.get(p, p) for p in args.skip_worker_parts}
    return [p for p in PARTS if p in wanted]


def add_options(group: argparse._ArgumentGroup) -> None:
    """The parts' options, in the worker half's group of ``bench/run.py``."""
    choices = [*PARTS, *ALIASES]
    group.add_argument("--worker-parts", nargs="+", choices=choices, default=list(PARTS), metavar="PART",
                       help=f"which parts of the worker half run (default all: {' '.join(PARTS)}; soak = latency)")
    group.add_argument("--skip-worker-parts", nargs="+", choices=choices, default=[], metavar="PART",
                       help="leave these parts out")
    group.add_argument("--max-rate", type=float, default=None,
                       help="the worker's maximum events/s for the latency parts (default: this run's throughput "
                            "or scaling figure, else the last worker.json)")
    group.add_argument("--soak-seconds", type=float, default=120.0,
                       help="the 50%% level, which is also the soak (default 120)")
    group.add_argument("--level-seconds", type=float, default=30.0, help="the 90%% level (default 30)")
    group.add_argument("--latency-warmup", type=float, default=5.0,
                       help="seconds at the start of each level left out of its quantiles (default 5)")
    group.add_argument("--senders", type=int, default=4, help="SDK sender processes per level (default 4)")
    group.add_argument("--historical-events", type=int, default=200_000,
                       help="events in the historical import (default 200,000)")
    group.add_argument("--historical-seconds", type=float, default=60.0,
                       help="seconds of live traffic beside the import (default 60)")
    group.add_argument("--persons-events", type=int, default=200_000,
                       help="events in the persons part's backlog (default 200,000)")
    group.add_argument("--windows-events", type=int, default=200_000,
                       help="events in the windows part's backlog (default 200,000)")
    group.add_argument("--sinks-events", type=int, default=100_000,
                       help="processed events each sink and its plain loop write per run (default 100,000)")
    group.add_argument("--sinks-rounds", type=int, default=3,
                       help="rounds of the sinks part, each sink and loop once per round; medians (default 3)")
    group.add_argument("--sinks-cases", nargs="+", choices=list(CASES), default=list(CASES), metavar="CASE",
                       help=f"which sinks the sinks part measures (default all: {' '.join(CASES)})")
    group.add_argument("--persons-known", type=int, default=20_000,
                       help="known persons (written before the persons part's runs) its events draw from "
                            "(default 20,000)")


def max_rate(args: argparse.Namespace, consumers: Sequence[ConsumerResult], outcome: PartsOutcome,
             latest: Path) -> tuple[float, str]:
    """See the module docstring; a clear error when there is none."""
    if args.max_rate:
        return args.max_rate, "--max-rate"
    worker = next((c for c in consumers if c.name == "worker" and c.valid), None)
    if worker is not None:
        return worker.events_per_s, "this run's throughput part"
    one = outcome.scaling.one_worker_rate() if outcome.scaling else None
    if one:
        return one, "this run's one-worker scaling run"
    if latest.exists():
        doc = json.loads(latest.read_text())
        found = next((c for c in doc.get("consumers", []) if c.get("name") == "worker" and c.get("valid")), None)
        if found:
            return float(found["events_per_s"]), f"the throughput part of {doc.get('started', '?')} ({latest.name})"
    raise SystemExit("the latency parts need the worker's maximum events/s: give --max-rate, or run the throughput "
                     "or scaling part with them")


def run_parts(ctx: Context, parts: Sequence[str], backlog: Backlog | None,
              consumers: Sequence[ConsumerResult]) -> PartsOutcome:
    """The parts after ``throughput`` among ``parts``; ``backlog``: what scaling drains."""
    args, outcome = ctx.args, PartsOutcome(seconds={})
    assert outcome.seconds is not None
    latest = ctx.settings.state_dir.resolve() / "bench" / "worker.json"
    if "persons" in parts:
        began = time.monotonic()
        outcome.persons = run_persons(ctx, args.persons_events, args.persons_known)
        outcome.seconds["persons"] = round(time.monotonic() - began, 1)
    if "windows" in parts:
        began = time.monotonic()
        outcome.windows = run_windows(ctx, args.windows_events)
        outcome.seconds["windows"] = round(time.monotonic() - began, 1)
    if "sinks" in parts:
        began = time.monotonic()
        outcome.sinks = run_sinks(ctx, args.sinks_events, args.sinks_rounds, args.sinks_cases)
        outcome.seconds["sinks"] = round(time.monotonic() - began, 1)
    if "scaling" in parts:
        assert backlog is not None, "the scaling part needs a backlog"
        began = time.monotonic()
        outcome.scaling = run_scaling(ctx, backlog, args.consumer_timeout)
        outcome.seconds["scaling"] = round(time.monotonic() - began, 1)
    if "latency" in parts or "historical" in parts:
        rate, source = max_rate(args, consumers, outcome, latest)
        step(f"the worker's maximum for the latency parts: {rate:,.0f} events/s ({source})")
        if "latency" in parts:
            began = time.monotonic()
            outcome.latency = run_latency(ctx, rate, source, args.soak_seconds, args.level_seconds,
                                          args.latency_warmup, args.senders)
            outcome.seconds["latency"] = round(time.monotonic() - began, 1)
        if "historical" in parts:
            began = time.monotonic()
            baseline = outcome.latency.level(0.5) if outcome.latency else None
            outcome.historical = run_historical(ctx, rate, args.historical_events, args.historical_seconds,
                                                args.latency_warmup, args.senders, baseline)
            outcome.seconds["historical"] = round(time.monotonic() - began, 1)
    return outcome


def finish_parts(ctx: Context, outcome: PartsOutcome, started: datetime) -> bool:
    """Print each part's table and targets, add them to ``worker.json``; whether every part ran validly."""
    args = ctx.args
    if outcome.persons is not None:
        parts_report.print_persons(outcome.persons, args.server_cpu)
    if outcome.windows is not None:
        parts_report.print_windows(outcome.windows, args.server_cpu)
    if outcome.sinks is not None:
        parts_report.print_sinks(outcome.sinks)
    if outcome.scaling is not None:
        parts_report.print_scaling(outcome.scaling, (args.server_cpu, args.client_cpu))
    if outcome.latency is not None:
        parts_report.print_latency(outcome.latency, args.server_cpu)
        parts_report.print_soak(outcome.latency)
    if outcome.historical is not None:
        parts_report.print_historical(outcome.historical, args.server_cpu)
    doc = parts_report.parts_json(outcome, started, ctx.run_dir)
    if not doc:
        return True
    latest = ctx.settings.state_dir.resolve() / "bench" / "worker.json"
    parts_report.write_parts(latest, ctx.run_dir / "worker.json", doc)
    took = ", ".join(f"{name} {s:.0f}s" for name, s in (outcome.seconds or {}).items())
    console.print(f"  {', '.join(doc)} added to {latest} ({took})")
    return outcome.valid
