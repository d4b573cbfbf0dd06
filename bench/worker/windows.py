"""The windows workload: what a declared window costs the worker, per event.

A backlog of its own (``events`` posthog-js-like events from ``DISTINCT_IDS`` distinct ids on a
fresh isolated topology's capture topic, packed as gateway flushes of ``PER_FLUSH``), whose
event times spread evenly over ``SPAN_SECONDS``, so the minute windows open, close and are
emitted as the run goes, as on live traffic.

Two ``headwater worker`` runs drain it, one after the other, each pinned to the server core and
measured like the throughput part's worker (``bench.worker.measure``), both without persons
(``bench.worker.persons.without_persons``: the window's cost alone): first **without windows**
(the default topology's ``event_rollups`` window, its topic and sink removed: ``without_windows``),
then **with windows** (the default ``event_rollups`` window). The run with windows ends only
when the window's consumer groups have committed everything (the aggregate step's; the re-key
step's too when the pipeline does not re-key it), so its CPU holds the whole window.

Reported: events/s and CPU µs/event of each, and the window's cost: the difference of CPU
µs/event, and its share of the run with windows. No target: the figure is for watching.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from bench.console import step
from bench.inprocess import event as bench_event
from bench.servers import Context
from bench.worker.backlog import Backlog, flushes, written_backlog
from bench.worker.consumers import Consumer
from bench.worker.measure import ConsumerResult
from bench.worker.persons import without_persons
from bench.worker.suite import drain_edited
from capture_gateway.events import uuid7
from schemas.events import RawEvent
from tests.support.kafka import lag
from tests.support.topology import fresh_prefix, isolated_pipeline, isolated_topology

DISTINCT_IDS = 20_000
SPAN_SECONDS = 600  # of event time the backlog covers: ten minute windows close during a run
PER_FLUSH = 600
RUNS = (("without", "without windows"), ("with", "with the event_rollups window"))


@dataclass
class WindowsPart:
    events: int
    envelopes: int = 0
    fill_s: float = 0.0
    runs: dict[str, ConsumerResult] = field(default_factory=dict)  # "without", "with"
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems and len(self.runs) == len(RUNS) and all(r.valid for r in self.runs.values())

    @property
    def window_us_per_event(self) -> float | None:
        """CPU µs/event with the window less without: what the window adds per event."""
        with_, without = self.runs.get("with"), self.runs.get("without")
        if with_ is None or without is None or not (with_.valid and without.valid):
            return None
        return with_.cpu_us_per_event - without.cpu_us_per_event

    @property
    def window_cpu_share(self) -> float | None:
        added, with_ = self.window_us_per_event, self.runs.get("with")
        return None if added is None or with_ is None or not with_.cpu_us_per_event else added / with_.cpu_us_per_event


def without_windows(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without persons and without its windows, their output topics and the sinks reading them."""
    doc = without_persons(doc)
    outputs = {w["output"] for w in doc.pop("windows", [])}
    doc["sinks"] = [s for s in doc["sinks"] if s["source"] not in outputs]
    doc["topics"] = {t: spec for t, spec in doc["topics"].items() if t not in outputs}
    return doc


def windows_events(token: str, events: int) -> Iterator[RawEvent]:
    """The backlog's events: see the module docstring."""
    start = int(time.time() * 1_000_000) - SPAN_SECONDS * 1_000_000
    for n in range(events):
        shape = bench_event(n)
        distinct_id = f"user-{n % DISTINCT_IDS:05d}"
        at = start + n * SPAN_SECONDS * 1_000_000 // events
        props = {**shape["properties"], "token": token, "distinct_id": distinct_id}
        yield RawEvent(uuid=uuid7(), event=shape["event"], distinct_id=distinct_id, token=token,
                       timestamp=at, now=at, sent_at=at, ip="127.0.0.1", properties=orjson.dumps(props).decode(),
                       set=None, set_once=None, historical_migration=False, capture_warnings=[],
                       skip_person_processing=False)


def _backlog(ctx: Context, part: WindowsPart) -> Backlog:
    doc = isolated_topology(fresh_prefix("bench_windows_"))
    ctx.topics += list(doc["topics"])
    pipeline = isolated_pipeline(ctx.endpoints.kafka, ctx.run_dir / "topology-windows-backlog.yaml", doc)
    partitions = pipeline.partitions(pipeline.topology.capture.topic)
    envelopes = list(flushes(windows_events(ctx.token, part.events), partitions, PER_FLUSH))
    part.envelopes = len(envelopes)
    return written_backlog(pipeline, ctx.endpoints.kafka, envelopes, "the windows workload, written by the bench")


def _windows_caught_up(ctx: Context, consumer: Consumer) -> bool:
    """Every window's re-key and aggregate group has committed all of its source."""
    topology = consumer.pipeline.topology
    topics = topology.kafka_topics()
    for window in topology.windows:
        steps = [(f"{topology.app_id}-window_{window.name}", window.repartition(topology.app_id))]
        if not topology.rekeyed_by_pipeline(window):  # else the pipeline re-keys, and commits with its own group
            steps.append((f"{topology.app_id}-window_{window.name}-rekey", window.source))
        for group, topic in steps:
            if lag(ctx.endpoints.kafka, group, {topic: topics[topic].partitions}):
                return False
    return True


def _drain(ctx: Context, backlog: Backlog, key: str, label: str) -> ConsumerResult:
    return drain_edited(ctx, backlog, f"windows_{key}", f"windows · {label}",
                        without_windows if key == "without" else without_persons,
                        settled=lambda consumer: _windows_caught_up(ctx, consumer))


def run_windows(ctx: Context, events: int) -> WindowsPart:
    """See the module docstring."""
    part = WindowsPart(events)
    began = time.monotonic()
    backlog = _backlog(ctx, part)
    part.fill_s = round(time.monotonic() - began, 1)
    step(f"windows: {backlog.total:,} events in {part.envelopes:,} envelopes in {part.fill_s:.1f}s, "
         f"{SPAN_SECONDS} s of event time")
    for key, label in RUNS:
        part.runs[key] = _drain(ctx, backlog, key, label)
    added = part.window_us_per_event
    step(f"windows: the window adds {added:.1f} CPU µs/event" if added is not None else
         "[red]windows: no figure (a run was invalid)[/]")
    return part


def part_json(part: WindowsPart) -> dict[str, Any]:
    added, share = part.window_us_per_event, part.window_cpu_share
    return {
        "events": part.events, "envelopes": part.envelopes, "fill_s": part.fill_s,
        "distinct_ids": DISTINCT_IDS, "span_seconds": SPAN_SECONDS, "per_flush": PER_FLUSH,
        "runs": {key: {**asdict(r), "valid": r.valid, "events_per_s": round(r.events_per_s, 1),
                       "cpu_us_per_event": round(r.cpu_us_per_event, 2)} for key, r in part.runs.items()},
        "window_cpu_us_per_event": None if added is None else round(added, 2),
        "window_cpu_share": None if share is None else round(share, 3),
        "valid": part.valid, "problems": part.problems,
    }
