"""``headwater lag``: how far behind each reader of the topology is, in messages and seconds, with a status."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from headwater.cli.output import JsonFlag, console, print_json, say, settings, topology
from headwater.ops.lag import LagProbe, LagReport, PartitionLag, Sampler
from headwater.ops.status import Status, fails, worst
from headwater.runtime.topology.readers import Reader, readers
from headwater.stack.endpoints import resolve_service

COLOURS = {Status.OK: "green", Status.WARN: "yellow", Status.STALL: "red", Status.STOP: "red", Status.ERR: "red"}


def lag(
    groups: Annotated[list[str] | None, typer.Option("--group", help="Also watch this consumer group "
                                                                     "(every topic it committed offsets for).")] = None,
    window: Annotated[float, typer.Option(min=1.0, help="Seconds to sample over (the rules' window).")] = 5.0,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between samples.")] = 1.0,
    watch: Annotated[bool, typer.Option("--watch", help="Redraw the table every interval until Ctrl-C.")] = False,
    partitions: Annotated[bool, typer.Option("--partitions", help="A row per partition (else only for those "
                                                                    "that are not OK).")] = False,
    fail_on: Annotated[Status | None, typer.Option(
        "--fail-on", case_sensitive=False, help="Exit 1 when any group is this bad or worse (WARN, or ERR for "
                                                "STALL, STOP and ERR): a health check.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Lag of every consumer group of the topology (the pipeline, each sink, agent and window) per
    partition: committed offset, log end, lag in messages and seconds (the age of the oldest message
    not consumed), rates, time to catch up, and a status (OK, WARN, STALL, STOP, ERR) with its rule."""
    current = settings()
    probe = LagProbe(resolve_service(current, "kafka"))
    watched = readers(topology(current))
    try:
        for group in groups or []:
            watched.append(Reader(f"group:{group}", group, tuple(probe.group_topics(group))))
        sampler = Sampler(probe, watched, window)
        if watch:
            _watch(sampler, interval, partitions)
            return
        sampler.sample()
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            sampler.sample()
        report = sampler.report()
    finally:
        probe.close()
    if as_json:
        print_json(report.to_json())
    else:
        console.print(table(report, partitions))
    if fail_on is not None and fails(report.status, fail_on):
        say(f"status {report.status} (--fail-on {fail_on})")
        raise typer.Exit(1)


def _watch(sampler: Sampler, interval: float, partitions: bool) -> None:
    sampler.sample()
    with Live(table(sampler.report(), partitions), console=console, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(interval)
                sampler.sample()
                live.update(table(sampler.report(), partitions))
        except KeyboardInterrupt:
            return


def _seconds(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{value:.1f}" if value < 600 else f"{value / 60:.0f}m"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _total(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def table(report: LagReport, partitions: bool = False) -> Table:
    """A row per reader and topic (its partitions summed; the slowest partition's age and catch-up),
    and, with ``partitions`` or for a partition that is not OK, a row per partition."""
    shown = Table("reader", "topic", "committed", "end", "lag", "lag s", "in/s", "out/s", "catch-up s", "members",
                  "status", "rule", title=f"lag over {report.window_seconds:.0f}s: "
                  f"[{COLOURS[report.status]}]{report.status}[/]", title_justify="left")
    for group in report.groups:
        topics: dict[str, list[PartitionLag]] = {}
        for p in group.partitions:
            topics.setdefault(p.topic, []).append(p)
        for topic, parts in topics.items():
            status = worst([p.status for p in parts])
            culprit = next(p for p in parts if p.status == status)
            committed = [p.committed for p in parts if p.committed is not None]
            catch_up = [p.catch_up_seconds for p in parts]
            shown.add_row(f"[bold]{group.role}[/]", f"{topic} ({len(parts)})", str(sum(committed)) if committed else "",
                          str(sum(p.end for p in parts)), str(sum(p.lag for p in parts)),
                          _seconds(max(p.lag_seconds for p in parts)),
                          _rate(_total([p.produce_rate for p in parts])),
                          _rate(_total([p.consume_rate for p in parts])),
                          _seconds(None if None in catch_up else max(c for c in catch_up if c is not None)),
                          str(group.members), f"[{COLOURS[status]}]{status}[/]",
                          culprit.rule if len(parts) == 1 else f"[{culprit.partition}] {culprit.rule}")
            for p in parts:
                if partitions or p.status != Status.OK:
                    shown.add_row("", f"  [{p.partition}]", "" if p.committed is None else str(p.committed),
                                  str(p.end), str(p.lag), _seconds(p.lag_seconds), _rate(p.produce_rate),
                                  _rate(p.consume_rate), _seconds(p.catch_up_seconds), p.member or "",
                                  f"[{COLOURS[p.status]}]{p.status}[/]", p.rule)
    return shown
