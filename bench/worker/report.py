"""The worker half's result: its targets, its table on the terminal, and ``worker.json``.

Every ratio compares events per CPU-second of the consumer process: what the same work costs
each of them on one core, whatever else limited its wall time.
"""

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
from bench.measure import NOISE_PERCENT, Measurement
from bench.worker.backlog import Backlog
from bench.worker.consumers import LABELS
from bench.worker.measure import ConsumerResult

GATEWAY_RATIO_TARGET = 1.0  # worker events/CPU-s ÷ the gateway's batched events/CPU-s
QUIX_RATIO_TARGET = 1.5  # worker events/CPU-s ÷ the Quix app's
PLAIN_RATIO_TARGET = 1.0  # worker events/CPU-s ÷ the plain loop's
RSS_TARGET_MB = 400.0  # the worker's peak resident set

NAMES = {
    "worker_vs_gateway": "worker events/CPU-s ÷ gateway batched events/CPU-s",
    "worker_vs_quix": "worker events/CPU-s ÷ Quix app events/CPU-s",
    "worker_vs_plain": "worker events/CPU-s ÷ plain loop events/CPU-s",
    "worker_peak_rss_mb": "worker peak RSS (VmHWM), MB",
}


def gateway_events_per_cpu_s(gateway: Measurement | None) -> float | None:
    """The gateway's events per CPU-second of its process under the batch workload (the measured part)."""
    if gateway is None or not gateway.cpu.process_seconds.get("server"):
        return None
    return gateway.requests * gateway.events_per_request / gateway.cpu.process_seconds["server"]


def _at_least(value: float, target: float) -> dict[str, Any]:
    return {"value": round(value, 3), "target": target, "compare": ">=", "met": value >= target}


def targets(results: list[ConsumerResult], gateway: Measurement | None) -> dict[str, Any]:
    by = {r.name: r for r in results if r.valid}
    out: dict[str, Any] = {}
    worker = by.get("worker")
    if worker is None:
        return out
    per_cpu = gateway_events_per_cpu_s(gateway)
    if per_cpu:
        out["worker_vs_gateway"] = _at_least(worker.events_per_cpu_s / per_cpu, GATEWAY_RATIO_TARGET)
    for name, target in (("quix", QUIX_RATIO_TARGET), ("plain", PLAIN_RATIO_TARGET)):
        other = by.get(name)
        if other is not None and other.events_per_cpu_s:
            out[f"worker_vs_{name}"] = _at_least(worker.events_per_cpu_s / other.events_per_cpu_s, target)
    out["worker_peak_rss_mb"] = {"value": worker.peak_rss_mb, "target": RSS_TARGET_MB, "compare": "<=",
                                 "met": worker.peak_rss_mb <= RSS_TARGET_MB}
    return out


def _optional(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _flag(percent: float) -> str:
    return f"[yellow]{percent:.0f}%[/]" if percent > NOISE_PERCENT else f"{percent:.0f}%"


def print_report(backlog: Backlog, results: list[ConsumerResult], found: dict[str, Any],
                 gateway: Measurement | None, args: argparse.Namespace) -> None:
    envelopes = sum(backlog.envelopes.values())
    table = Table(title=f"make bench · worker: {backlog.total:,} events in {envelopes:,} envelopes "
                        f"({backlog.total / max(envelopes, 1):.1f} per envelope), each consumer pinned to "
                        f"cpu{args.server_cpu}, ClickHouse (CH) and Kafka not pinned", title_justify="left")
    columns = ("consumer", "events", "startup s", "wall s", "events/s", "CPU s", "core", "events/CPU-s",
               "CPU µs/event", "RSS MB start→peak", "CH CPU s", "CH µs/row", "Kafka CPU s", "foreign", "rows (FINAL)")
    for column in columns:
        table.add_column(column, justify="left" if column in {"consumer", "rows (FINAL)"} else "right", no_wrap=True)
    for r in results:
        check = f"ok: {r.rows:,}" if r.valid else f"[red]{r.rows:,} of {r.expected:,}[/]"
        table.add_row(
            LABELS[r.name], f"{r.rows:,}", f"{r.startup_s:.1f}", f"{r.wall_s:.1f}", f"{r.events_per_s:,.0f}",
            f"{r.cpu_s:.1f}", f"{r.core_percent:.0f}%", f"{r.events_per_cpu_s:,.0f}", f"{r.cpu_us_per_event:.1f}",
            f"{r.start_rss_mb:,.0f} → {r.peak_rss_mb:,.0f}", _optional(r.clickhouse_cpu_s),
            _optional(r.clickhouse_us_per_row), _optional(r.kafka_cpu_s),
            _flag(r.foreign_percent), check,
        )
    console.print(table)
    per_cpu = gateway_events_per_cpu_s(gateway)
    if per_cpu is not None and gateway is not None:
        console.print(f"  gateway · batch (this run): {per_cpu:,.0f} events/CPU-s "
                      f"({gateway.cpu_us_per_request / gateway.events_per_request:.1f} CPU µs/event)")
    for key, t in found.items():
        value = f"{t['value']:,.0f}" if key.endswith("_mb") else f"{t['value']:.3f}"
        verdict = "[green]met[/]" if t["met"] else "[red]MISSED[/]"
        sign = "≥" if t["compare"] == ">=" else "≤"
        console.print(f"  {NAMES[key]}: {value} (target {sign} {t['target']:g}) {verdict}")
    by = {r.name: r for r in results}
    if "worker" in by and by["worker"].valid and "worker_vs_gateway" not in found:
        console.print("  worker ÷ gateway: no gateway figure in this run (--backlog reuses kept topics)")
    for r in results:
        if r.foreign_percent > NOISE_PERCENT:
            console.print(f"  [yellow]NOISY[/] {r.name}: processes outside the benchmark used {r.foreign_percent:.0f}% "
                          f"of a core (limit {NOISE_PERCENT:.0f}%): its wall time suffered; run again when quieter")
    for r in results:
        for problem in r.problems:
            console.print(f"  [red]INVALID[/] {r.name}: {problem}")


def write_json(path: Path, backlog: Backlog, results: list[ConsumerResult], found: dict[str, Any],
               gateway: Measurement | None, args: argparse.Namespace, started: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    per_cpu = gateway_events_per_cpu_s(gateway)
    doc = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "valid": all(r.valid for r in results),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "settings": {"consumer_cpu": args.server_cpu, "backlog_min": args.backlog_min,
                     "consumer_timeout_s": args.consumer_timeout, "baseline_stage_calls": args.stage_calls},
        "backlog": {"origin": backlog.origin, "topology": str(backlog.pipeline.path), "events": backlog.events,
                    "envelopes": backlog.envelopes, "total_events": backlog.total},
        "gateway_batch": None if per_cpu is None or gateway is None else {
            "events_per_cpu_s": round(per_cpu, 1), "events_per_s": gateway.events_per_s,
            "cpu_us_per_event": round(gateway.cpu_us_per_request / gateway.events_per_request, 2)},
        "targets": found,
        "consumers": [{**asdict(r), "label": LABELS[r.name], "valid": r.valid,
                       "events_per_s": round(r.events_per_s, 1), "events_per_cpu_s": round(r.events_per_cpu_s, 1),
                       "cpu_us_per_event": round(r.cpu_us_per_event, 2), "core_percent": round(r.core_percent, 1),
                       "noisy": r.foreign_percent > NOISE_PERCENT,
                       "clickhouse_us_per_row": None if r.clickhouse_us_per_row is None
                       else round(r.clickhouse_us_per_row, 2)} for r in results],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
