"""The tables and targets of the worker half's parts after throughput (persons, scaling, latency, soak,
historical) and their JSON.

Each part has a key of its own in ``worker.json`` (``persons``, ``latency``, ``soak``, ``scaling``,
``historical``). When the throughput part ran in the same run, its file is written first and
the parts are added to it; otherwise the last ``worker.json`` is kept and only the keys of the
parts that ran are replaced (each part says when it ran, ``started``, and where, ``run_dir``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.console import console
from bench.measure import NOISE_PERCENT
from bench.worker import historical, latency, persons, scaling, sink_throughput, windows
from bench.worker.historical import HistoricalPart
from bench.worker.latency import LatencyPart, LevelResult
from bench.worker.measure import ConsumerResult
from bench.worker.persons import PersonsPart
from bench.worker.scaling import ScalingPart
from bench.worker.sink_throughput import SinksPart
from bench.worker.windows import WindowsPart


@dataclass
class PartsOutcome:
    """What the parts after throughput measured in this run (None: not run)."""

    persons: PersonsPart | None = None
    windows: WindowsPart | None = None
    sinks: SinksPart | None = None
    scaling: ScalingPart | None = None
    latency: LatencyPart | None = None
    historical: HistoricalPart | None = None
    seconds: dict[str, float] | None = None  # wall time of each part

    @property
    def valid(self) -> bool:
        parts: list[PersonsPart | WindowsPart | SinksPart | ScalingPart | LatencyPart | HistoricalPart | None] = [
            self.persons, self.windows, self.sinks, self.scaling, self.latency, self.historical]
        return all(part.valid for part in parts if part is not None)


def _verdict(met: bool) -> str:
    return "[green]met[/]" if met else "[red]MISSED[/]"


def _level_columns(table: Table) -> None:
    for column in ("level", "target ev/s", "achieved ev/s", "events", "p50 ms", "p95 ms", "p99 ms", "max ms",
                   "to Kafka p50/p99", "CPU worker/gw/senders/CH/Kafka", "foreign", "cores busy"):
        table.add_column(column, justify="left" if column == "level" else "right", no_wrap=True)


def _level_row(level: LevelResult) -> list[str]:
    cpu = level.cpu_percent
    achieved = f"{level.achieved_per_s:,.0f}" + (" [yellow]SHORT[/]" if level.short else "")
    busy = " ".join(f"{v:.0f}%" for _, v in sorted(level.busy_percent.items()))
    foreign = cpu.get("foreign", 0.0)
    shares = "/".join(f"{cpu.get(k, 0):.0f}" for k in ("worker", "gateway", "senders", "clickhouse", "kafka"))
    return [level.name + ("" if level.valid else " [red]INVALID[/]"), f"{level.target_per_s:,.0f}", achieved,
            f"{level.events:,}", f"{level.p50_ms:,.0f}", f"{level.p95_ms:,.0f}", f"{level.p99_ms:,.0f}",
            f"{level.max_ms:,.0f}", f"{level.kafka_p50_ms:,.0f} / {level.kafka_p99_ms:,.0f}", f"{shares} %",
            f"[yellow]{foreign:.0f}%[/]" if foreign > NOISE_PERCENT else f"{foreign:.0f}%",
            busy + (" [yellow]SATURATED[/]" if level.saturated else "")]


def _level_notes(levels: list[LevelResult]) -> None:
    for level in levels:
        if level.short:
            console.print(f"  [yellow]SHORT[/] {level.name}: the senders reached {level.achieved_per_s:,.0f} "
                          f"of {level.target_per_s:,.0f} events/s (they run at nice 19 and yield the cores)")
        if level.saturated:
            console.print(f"  [yellow]SATURATED[/] {level.name}: both cores ≥ {latency.SATURATED_PERCENT:.0f}% busy; "
                          "the senders and the stack competed with the worker: the machine set this latency")
        for problem in level.problems:
            console.print(f"  [red]INVALID[/] {level.name}: {problem}")


def latency_targets(part: LatencyPart) -> dict[str, Any]:
    out: dict[str, Any] = {}
    half = part.level(0.5)
    if half is not None and half.events:
        out["p99_ms_at_50"] = {"value": half.p99_ms, "target": latency.P99_TARGET_MS, "compare": "<=",
                               "met": half.p99_ms <= latency.P99_TARGET_MS}
    return out


def soak_targets(part: LatencyPart) -> dict[str, Any]:
    soak = part.soak
    if soak is None:
        return {}
    return {
        "peak_rss_mb": {"value": soak.peak_mb, "target": latency.RSS_TARGET_MB, "compare": "<=",
                        "met": soak.peak_mb <= latency.RSS_TARGET_MB},
        "second_half_slope_mb_per_min": {"value": soak.slope_second_half_mb_per_min,
                                         "target": latency.FLAT_MB_PER_MIN, "compare": "<", "met": soak.flat},
    }


def print_latency(part: LatencyPart, cpu: int) -> None:
    table = Table(title=f"make bench · worker latency: the PostHog SDK ({part.senders} sender processes) → gateway → "
                        f"Kafka → worker (cpu{cpu}) → ClickHouse; levels of the worker's maximum, "
                        f"{part.max_rate:,.0f} events/s ({part.max_rate_source}); CPU as % of one core",
                  title_justify="left")
    _level_columns(table)
    for level in part.levels:
        table.add_row(*_level_row(level))
    console.print(table)
    for key, t in latency_targets(part).items():
        assert key == "p99_ms_at_50"
        console.print(f"  p99 at 50% of the maximum: {t['value']:,.0f} ms (target ≤ {t['target']:,.0f} ms) "
                      f"{_verdict(t['met'])}")
    _level_notes(part.levels)
    for problem in part.problems:
        console.print(f"  [red]INVALID[/] latency: {problem}")


def print_soak(part: LatencyPart) -> None:
    soak = part.soak
    if soak is None:
        return
    table = Table(title=f"make bench · worker soak: the 50% level above, {soak.seconds:g}s, the worker's VmRSS every "
                        f"{soak.every_s:g}s", title_justify="left")
    for column in ("seconds", "samples", "start MB", "peak MB (VmHWM)", "peak sampled MB", "end MB",
                   "slope 2nd half MB/min", "slope all MB/min"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_row(f"{soak.seconds:g}", str(len(soak.samples)), f"{soak.start_mb:,.0f}", f"{soak.peak_mb:,.0f}",
                  f"{soak.peak_sampled_mb:,.0f}", f"{soak.end_mb:,.0f}", f"{soak.slope_second_half_mb_per_min:+.2f}",
                  f"{soak.slope_all_mb_per_min:+.2f}")
    console.print(table)
    console.print("  samples (s: MB): " + ", ".join(f"{t:.0f}: {v:.0f}" for t, v in soak.samples))
    met = soak.peak_mb <= latency.RSS_TARGET_MB and soak.flat
    console.print(f"  worker RSS ≤ {latency.RSS_TARGET_MB:.0f} MB and flat (second-half slope < "
                  f"{latency.FLAT_MB_PER_MIN:g} MB/min): peak {soak.peak_mb:,.0f} MB, "
                  f"{soak.slope_second_half_mb_per_min:+.2f} MB/min {_verdict(met)}")


def print_scaling(part: ScalingPart, cores: tuple[int, int]) -> None:
    table = Table(title=f"make bench · worker scaling: {part.backlog_events:,} events ({part.backlog_origin}) "
                        "drained by 1 worker, then by 2 in one consumer group, one table", title_justify="left")
    for column in ("workers", "cores", "join s", "wall s", "events/s", "CPU s per worker", "core per worker",
                   "CH", "Kafka", "foreign", "cores busy", "peak RSS MB per worker", "source partitions per worker",
                   "rows (FINAL)"):
        table.add_column(column, justify="left" if column in {"rows (FINAL)", "cores"} else "right", no_wrap=True)
    for r in part.runs:
        check = f"ok: {r.rows:,}" if r.valid else f"[red]{r.rows:,} of {r.expected:,}[/]"
        cpu = r.cpu_percent
        foreign = cpu.get("foreign", 0.0)
        table.add_row(str(r.workers), ", ".join(f"cpu{c}" for c in cores[:r.workers]), f"{r.join_s:.1f}",
                      f"{r.wall_s:.1f}", f"{r.events_per_s:,.0f}", " + ".join(f"{c:.1f}" for c in r.cpu_s) or "-",
                      " + ".join(f"{100 * c / r.wall_s:.0f}%" for c in r.cpu_s) if r.wall_s else "-",
                      f"{cpu.get('clickhouse', 0):.0f}%", f"{cpu.get('kafka', 0):.0f}%",
                      f"[yellow]{foreign:.0f}%[/]" if foreign > NOISE_PERCENT else f"{foreign:.0f}%",
                      " ".join(f"{v:.0f}%" for _, v in sorted(r.busy_percent.items())),
                      " + ".join(f"{m:.0f}" for m in r.peak_rss_mb) or "-",
                      " + ".join(str(p) for p in r.partitions) or "-", check)
    console.print(table)
    ratio = part.ratio
    if ratio is not None:
        console.print(f"  2 workers ÷ 1 (events/s): {ratio:.3f} (target ≥ {scaling.RATIO_TARGET:g} when partitions "
                      f"allow: 4 per topic) {_verdict(ratio >= scaling.RATIO_TARGET)}")
    console.print("  caveat: two cores; with a worker pinned to each, ClickHouse, Kafka, Postgres and Redis share "
                  "their cores (with one worker they have the other core to themselves)")
    for r in part.runs:
        for problem in r.problems:
            console.print(f"  [red]INVALID[/] {r.workers} worker(s): {problem}")


def _per_event(seconds: float | None, r: ConsumerResult) -> str:
    return "-" if seconds is None or not r.rows else f"{1e6 * seconds / r.rows:.1f}"


def _run_rows(table: Table, runs: Sequence[tuple[str, str]], results: Mapping[str, ConsumerResult],
              extra: Mapping[str, Callable[[ConsumerResult], str]]) -> None:
    """The columns and rows of a part that drains one backlog with two workers (persons, windows)."""
    for column in ("worker", "startup s", "wall s", "events/s", "CPU s", "core", "CPU µs/event", "RSS MB peak",
                   *extra, "foreign", "rows (FINAL)"):
        table.add_column(column, justify="left" if column in {"worker", "rows (FINAL)"} else "right", no_wrap=True)
    for key, label in runs:
        r = results.get(key)
        if r is None:
            continue
        check = f"ok: {r.rows:,}" if r.valid else f"[red]{r.rows:,} of {r.expected:,}[/]"
        table.add_row(label, f"{r.startup_s:.1f}", f"{r.wall_s:.1f}", f"{r.events_per_s:,.0f}", f"{r.cpu_s:.1f}",
                      f"{r.core_percent:.0f}%", f"{r.cpu_us_per_event:.1f}", f"{r.peak_rss_mb:,.0f}",
                      *(cell(r) for cell in extra.values()),
                      f"[yellow]{r.foreign_percent:.0f}%[/]" if r.foreign_percent > NOISE_PERCENT
                      else f"{r.foreign_percent:.0f}%", check)


def _run_problems(part: str, results: Mapping[str, ConsumerResult], problems: Sequence[str]) -> None:
    for key, r in results.items():
        if r.foreign_percent > NOISE_PERCENT:
            console.print(f"  [yellow]NOISY[/] {part} · {key}: processes outside the benchmark used "
                          f"{r.foreign_percent:.0f}% of a core: its wall time suffered; run again when quieter")
        for problem in r.problems:
            console.print(f"  [red]INVALID[/] {part} · {key}: {problem}")
    for problem in problems:
        console.print(f"  [red]INVALID[/] {part}: {problem}")


def print_persons(part: PersonsPart, cpu: int) -> None:
    table = Table(title=f"make bench · worker persons: {part.events:,} events in {part.envelopes:,} envelopes, "
                        f"{persons.KNOWN_SHARE:.0%} from {part.known_ids:,} known persons, {part.new_ids:,} from new "
                        f"ones, {part.with_set:,} with $set/$set_once; the worker pinned to cpu{cpu}",
                  title_justify="left")
    _run_rows(table, persons.RUNS, part.runs, {
        "CH µs/row": lambda r: _per_event(r.clickhouse_cpu_s, r),
        "Postgres µs/event": lambda r: _per_event(r.postgres_cpu_s, r),
        "Redis µs/event": lambda r: _per_event(r.redis_cpu_s, r)})
    console.print(table)
    console.print(f"  known persons written through the store in {part.prewarm_s:.1f}s; backlog written in "
                  f"{part.fill_s:.1f}s")
    ratio = part.ratio
    if ratio is not None:
        console.print(f"  with persons ÷ without (events/s): {ratio:.3f} (target ≥ {persons.RATIO_TARGET:g}) "
                      f"{_verdict(ratio >= persons.RATIO_TARGET)}")
    if part.cpu_ratio is not None and part.persons_cpu_share is not None:
        console.print(f"  with ÷ without (events per CPU-second): {part.cpu_ratio:.3f}; the persons' share of the "
                      f"worker's CPU (the stage, its person rows and sinks; the difference of the two runs): "
                      f"{part.persons_cpu_share:.1%}")
    lookups = part.lookups()
    total = sum(lookups.values())
    if total:
        console.print(f"  person lookups: {total:,}; Redis answered {lookups['cache']:,} ({part.cache_share:.1%}), "
                      f"Postgres {lookups['postgres'] + lookups['new']:,} (found {lookups['postgres']:,}, "
                      f"new {lookups['new']:,}); person rows sent to ClickHouse: {part.person_rows():,}")
    run = part.runs.get("with")
    if run is not None:
        conflicts = run.counters.get("headwater_stream_person_write_conflicts_total", 0)
        failures = run.counters.get("headwater_stream_person_cache_write_failures_total", 0)
        if conflicts or failures:
            console.print(f"  [yellow]person write conflicts {conflicts:,}, cache write failures {failures:,}[/]")
    _run_problems("persons", part.runs, part.problems)


def print_windows(part: WindowsPart, cpu: int) -> None:
    table = Table(title=f"make bench · worker windows: {part.events:,} events in {part.envelopes:,} envelopes from "
                        f"{windows.DISTINCT_IDS:,} distinct ids over {windows.SPAN_SECONDS} s of event time, without "
                        f"persons; the worker pinned to cpu{cpu}", title_justify="left")
    _run_rows(table, windows.RUNS, part.runs, {"Kafka µs/event": lambda r: _per_event(r.kafka_cpu_s, r)})
    console.print(table)
    added, share = part.window_us_per_event, part.window_cpu_share
    if added is not None and share is not None:
        console.print(f"  the window's cost: {added:.1f} CPU µs/event ({share:.1%} of the worker with it; re-key "
                      "and aggregate, until both groups committed everything; no target)")
    _run_problems("windows", part.runs, part.problems)


def print_sinks(part: SinksPart) -> None:
    table = Table(title=f"make bench · sinks: {part.records:,} processed events in {part.envelopes:,} Avro envelopes, "
                        f"{part.batches} batches of ≤ {part.batch_events:,}; each sink as the worker drives it "
                        f"(SinkAgent.handle, then its flush) beside a plain loop into the same destination; "
                        f"median of {part.rounds} rounds, this process unpinned", title_justify="left")
    for column in ("case", "sink records/s", "loop records/s", "sink ÷ loop", "per round", "CPU µs/rec sink/loop",
                   "CH µs/rec sink/loop", "foreign", "target"):
        table.add_column(column, justify="left" if column in {"case", "target"} else "right", no_wrap=True)
    for name, case in part.cases.items():
        sink, loop, ratio = case.median_rate("sink"), case.median_rate("loop"), case.ratio
        cpu = (case.median_cpu_us("sink"), case.median_cpu_us("loop"))
        ch = (case.median_clickhouse_us("sink"), case.median_clickhouse_us("loop"))
        foreign = max((r.foreign_percent for r in case.runs), default=0.0)
        verdict = "[red]INVALID[/]" if not case.valid else \
            "-" if ratio is None else _verdict(ratio >= sink_throughput.RATIO_TARGET)
        table.add_row(name, "-" if sink is None else f"{sink:,.0f}", "-" if loop is None else f"{loop:,.0f}",
                      "-" if ratio is None else f"{ratio:.3f}", " ".join(f"{r:.2f}" for r in case.round_ratios()),
                      " / ".join("-" if v is None else f"{v:.1f}" for v in cpu),
                      " / ".join("-" if v is None else f"{v:.1f}" for v in ch) if name.startswith("clickhouse")
                      else "-",
                      f"[yellow]≤{foreign:.0f}%[/]" if foreign > NOISE_PERCENT else f"≤{foreign:.0f}%", verdict)
    console.print(table)
    console.print(f"  target: sink ÷ loop ≥ {sink_throughput.RATIO_TARGET:g} (median records/s of each side)")
    for name, case in part.cases.items():
        console.print(f"  {name}: sink {case.sink}; loop {case.loop}")
        for r in case.runs:
            if r.foreign_percent > NOISE_PERCENT:
                console.print(f"  [yellow]NOISY[/] sinks · {name} · {r.side} round {r.round + 1}: processes outside "
                              f"the benchmark used {r.foreign_percent:.0f}% of a core")
            for problem in r.problems:
                console.print(f"  [red]INVALID[/] sinks · {name} · {r.side} round {r.round + 1}: {problem}")
    for problem in part.problems:
        console.print(f"  [red]INVALID[/] sinks: {problem}")


def print_historical(part: HistoricalPart, cpu: int) -> None:
    table = Table(title=f"make bench · worker historical: live SDK traffic at 50% with {part.import_events:,} import "
                        f"events (historical_migration) waiting when the worker (cpu{cpu}) starts, beside the plain "
                        "50% level", title_justify="left")
    _level_columns(table)
    for level in (part.baseline, part.live):
        if level is not None:
            table.add_row(*_level_row(level))
    console.print(table)
    imports = Table(title=f"  the import meanwhile (rows counted every {historical.PROGRESS_EVERY:g}s; "
                          "seconds from the worker's assignment)", title_justify="left")
    for column in ("import events", "written s", "rows at live start", "rows during live", "during live ev/s",
                   "live send s", "import done s"):
        imports.add_column(column, justify="right", no_wrap=True)
    rate = part.imported_during_live / part.live_send_seconds if part.live_send_seconds else 0.0
    imports.add_row(f"{part.import_events:,}", f"{part.fill_seconds:.1f}", f"{part.imported_at_live_start:,}",
                    f"{part.imported_during_live:,}", f"{rate:,.0f}", f"{part.live_send_seconds:.1f}",
                    "-" if part.import_done_s is None else f"{part.import_done_s:.1f}")
    console.print(imports)
    console.print(f"  baseline: {part.baseline_source}")
    ratio = part.p99_ratio
    if ratio is not None:
        target = historical.P99_RATIO_TARGET
        console.print(f"  live p99 with the import ÷ without: {ratio:.3f} (target ≤ {target:g}, "
                      f"this bench's threshold for \"does not raise\") {_verdict(ratio <= target)}")
    _level_notes([level for level in (part.baseline, part.live) if level is not None])
    for problem in part.problems:
        console.print(f"  [red]INVALID[/] historical: {problem}")


def parts_json(outcome: PartsOutcome, started: datetime, run_dir: Path) -> dict[str, Any]:
    when = {"started": started.isoformat(timespec="seconds"), "run_dir": str(run_dir)}
    seconds = outcome.seconds or {}
    doc: dict[str, Any] = {}
    if outcome.persons is not None:
        doc["persons"] = {**when, "seconds": seconds.get("persons"), **persons.part_json(outcome.persons)}
    if outcome.windows is not None:
        doc["windows"] = {**when, "seconds": seconds.get("windows"), **windows.part_json(outcome.windows)}
    if outcome.sinks is not None:
        doc["sinks"] = {**when, "seconds": seconds.get("sinks"), **sink_throughput.part_json(outcome.sinks)}
    if outcome.latency is not None:
        part = outcome.latency
        doc["latency"] = {**when, "seconds": seconds.get("latency"), "valid": part.valid,
                          "max_rate": part.max_rate, "max_rate_source": part.max_rate_source,
                          "senders": part.senders, "levels": [latency.level_json(v) for v in part.levels],
                          "targets": latency_targets(part), "problems": part.problems}
        if part.soak is not None:
            doc["soak"] = {**when, "from": "the latency part's 50% level", **asdict(part.soak),
                           "flat": part.soak.flat, "flat_means": f"second-half slope < {latency.FLAT_MB_PER_MIN:g} "
                           "MB/min", "targets": soak_targets(part)}
    if outcome.scaling is not None:
        doc["scaling"] = {**when, "seconds": seconds.get("scaling"), **scaling.part_json(outcome.scaling)}
    if outcome.historical is not None:
        doc["historical"] = {**when, "seconds": seconds.get("historical"), **historical.part_json(outcome.historical)}
    return doc


def write_parts(latest: Path, run_copy: Path, doc: dict[str, Any]) -> None:
    """Add the parts' keys to ``latest`` (kept otherwise: the last throughput figures stay) and to ``run_copy``."""
    for path in (latest, run_copy):
        path.parent.mkdir(parents=True, exist_ok=True)
        current: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        current.update(doc)
        path.write_text(json.dumps(current, indent=2) + "\n")
