"""The result: targets, the table on the terminal, and the JSON file."""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.console import console
from bench.measure import NOISE_PERCENT, SATURATED_PERCENT, WORKLOADS, Measurement, connections

SINGLES_RATIO_TARGET = 0.6  # gateway req/s ÷ ceiling req/s, single events
BATCH_EVENTS_TARGET = 50_000  # gateway events/s, 50-event batches, one core


def summary(results: list[Measurement]) -> dict[str, Any]:
    by = {(m.server, m.workload): m for m in results}
    out: dict[str, Any] = {}
    single_gw, single_ceiling = by.get(("gateway", "single")), by.get(("ceiling", "single"))
    batch_gw, batch_ceiling = by.get(("gateway", "batch")), by.get(("ceiling", "batch"))
    if single_gw and single_ceiling:
        ratio = single_gw.requests_per_s / single_ceiling.requests_per_s
        out["singles_ratio"] = {"value": round(ratio, 3), "target": SINGLES_RATIO_TARGET,
                                "met": ratio >= SINGLES_RATIO_TARGET}
    if batch_gw:
        out["batch_events_per_s"] = {"value": batch_gw.events_per_s, "target": BATCH_EVENTS_TARGET,
                                     "met": batch_gw.events_per_s >= BATCH_EVENTS_TARGET}
    if batch_gw and batch_ceiling:
        out["batch_ratio"] = {"value": round(batch_gw.requests_per_s / batch_ceiling.requests_per_s, 3),
                              "target": None, "met": None}
    return out


def print_report(results: list[Measurement], targets: dict[str, Any], args: argparse.Namespace) -> None:
    server_core, client_core = f"cpu{args.server_cpu}", f"cpu{args.client_cpu}"
    per_workload = ", ".join(f"{w.name} {connections(args, w)}" for w in WORKLOADS.values())
    table = Table(title=f"make bench: connections {per_workload}, {args.duration:g}s each, server on "
                        f"{server_core}, wrk on {client_core}", title_justify="left")
    for column in ("server", "workload", "req/s", "events/s", "p50 ms", "p99 ms", "non-2xx", "cpu µs/req",
                   "server core", "wrk cpu", "kafka cpu", "irq", "foreign", "Kafka: events = 200s × per request"):
        left = column in {"server", "workload"} or column.startswith("Kafka")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for m in results:
        check = "-"
        if m.kafka is not None:
            ok = m.kafka["events_decoded"] == m.kafka["expected_events"]
            check = (f"{'ok' if ok else 'MISMATCH'}: {m.kafka['events_decoded']:,} = "
                     f"{m.kafka['gateway_200_answers']:,}×{m.events_per_request}")
        table.add_row(
            m.server, m.workload, f"{m.requests_per_s:,.0f}", f"{m.events_per_s:,.0f}", f"{m.latency_p50_ms:.2f}",
            f"{m.latency_p99_ms:.2f}", str(m.non_2xx) if m.valid else f"[red]{m.non_2xx}[/]",
            f"{m.cpu_us_per_request:,.0f}",
            f"{m.server_share:.0f}%" if m.saturated else f"[yellow]{m.server_share:.0f}%[/]",
            f"{100 * m.cpu.process_seconds.get('wrk', 0) / m.cpu.wall_seconds:.0f}%",
            f"{100 * m.cpu.process_seconds.get('kafka', 0) / m.cpu.wall_seconds:.0f}%",
            f"{sum(m.cpu.irq_percent.values()):.0f}%", _flag(m.foreign_percent, NOISE_PERCENT), check,
        )
    console.print(table)
    for m in results:
        split = ", ".join(f"{group} {seconds:.1f}s" for group, seconds in m.cpu.server_threads.items() if seconds)
        switches = m.cpu.server_context_switches / max(m.requests, 1)
        console.print(f"  {m.server} · {m.workload}: server CPU by thread: {split}; "
                      f"{switches:.1f} context switches per request")
    names = {"singles_ratio": "singles: gateway req/s ÷ ceiling req/s",
             "batch_events_per_s": "batches: gateway events/s on one core",
             "batch_ratio": "batches: gateway req/s ÷ ceiling req/s (no target)"}
    for key, t in targets.items():
        value = f"{t['value']:,.3f}" if isinstance(t["value"], float) and t["value"] < 10 else f"{t['value']:,.0f}"
        verdict = "" if t["met"] is None else ("[green]met[/]" if t["met"] else "[red]MISSED[/]")
        target = "" if t["target"] is None else f" (target ≥ {t['target']:,})"
        console.print(f"  {names[key]}: {value}{target} {verdict}")
    for m in results:
        if m.foreign_percent > NOISE_PERCENT:
            console.print(f"  [yellow]NOISY[/] {m.server} · {m.workload}: processes outside the benchmark used "
                          f"{m.foreign_percent:.0f}% of a core (limit {NOISE_PERCENT:.0f}%); run again when the "
                          "machine is quieter")
        if not m.saturated:
            console.print(f"  [yellow]NOT SATURATED[/] {m.server} · {m.workload}: the server's core was "
                          f"{m.cpu.busy_percent.get(m.server_core, 0):.0f}% busy (< {SATURATED_PERCENT:.0f}%): "
                          "something else (wrk, Kafka's latency, foreign load) limited this row")
    for m in results:
        for problem in m.problems:
            console.print(f"  [red]INVALID[/] {m.server} · {m.workload}: {problem}")


def _flag(percent: float, limit: float) -> str:
    return f"[yellow]{percent:.0f}%[/]" if percent > limit else f"{percent:.0f}%"


def write_json(path: Path, results: list[Measurement], targets: dict[str, Any], args: argparse.Namespace,
               started: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "valid": all(m.valid for m in results),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup,
                     "connections": {w.name: connections(args, w) for w in WORKLOADS.values()},
                     "server_cpu": args.server_cpu, "client_cpu": args.client_cpu, "wrk_threads": 1},
        "targets": targets,
        "results": [{**asdict(m), "valid": m.valid,
                     "server_cpu_us_per_request": round(m.cpu_us_per_request, 1),
                     "server_core_share_percent": round(m.server_share, 1), "saturated": m.saturated,
                     "foreign_cpu_percent": round(m.foreign_percent, 1), "noisy": m.noisy} for m in results],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
