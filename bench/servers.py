"""The servers measured: the ceiling (and the ladder's rungs between it and the gateway), and the gateway.

Each is started pinned to the server core (``tests.support.processes``), loaded with wrk
(``bench.measure``) and stopped. For the gateway, every envelope its workload wrote is then
read back from Kafka and decoded: the events there must equal its 200 answers times the events
per request.
"""

from __future__ import annotations

import argparse
import re
import signal
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.console import step
from bench.measure import BENCH, WORKLOADS, Measurement, Workload, measure
from headwater.runtime.settings import Endpoints, Settings
from headwater.runtime.topology import Topology
from headwater.stack.process import pick_port
from tests.support.kafka import count_events, create_topic
from tests.support.metrics import Metrics, scrape
from tests.support.processes import PYTHON, Process, start_gateway
from tests.support.topology import Pipeline, isolated_pipeline, isolated_topology
from tests.support.waiting import wait_until


@dataclass
class Context:
    args: argparse.Namespace
    settings: Settings
    endpoints: Endpoints
    token: str
    run_dir: Path
    service_pids: dict[str, int]
    topics: list[str] = field(default_factory=list)  # created by this run, deleted at the end


def ceiling(ctx: Context, name: str = "ceiling", flags: tuple[str, ...] = ()) -> list[Measurement]:
    port = pick_port(0)
    log = ctx.run_dir / f"{re.sub(r'[^a-z]+', '-', name)}.log"
    server = Process(name, [PYTHON, str(BENCH / "baseline.py"), "--port", str(port), *flags], log,
                     url=f"http://127.0.0.1:{port}", cpu=ctx.args.server_cpu).start()
    results = []
    try:
        server.wait_http("/_liveness", timeout=60)
        for workload in ctx.args.workloads:
            pids = {"server": server.pid, **ctx.service_pids}
            results.append(measure(ctx.args, name, server.url, WORKLOADS[workload], ctx.token, pids))
    finally:
        died = not server.running
        server.stop()
        if died:
            raise RuntimeError(f"{name} died during the run:\n{server.tail(30)}")
    return results


def ladder(ctx: Context) -> list[Measurement]:
    """The ceiling plus, one at a time, pieces of the gateway's path (bench/baseline.py's options)."""
    topic = f"bench{uuid.uuid4().hex[:6]}_ladder"
    ctx.topics.append(topic)
    create_topic(ctx.endpoints.kafka, topic, partitions=4)
    results: list[Measurement] = []
    rungs = [
        ("ceiling +body", ("--read-body",)),
        ("ceiling +body +kafka", ("--read-body", "--kafka", ctx.endpoints.kafka, "--topic", topic)),
    ]
    for name, flags in rungs:
        results += ceiling(ctx, name, flags)
    return results


def gateway_pipeline(ctx: Context, workload: Workload) -> Pipeline:
    """A fresh isolated topology for ``workload``, its topics created (and deleted at the end of the run)."""
    doc = isolated_topology(f"bench{uuid.uuid4().hex[:6]}_{workload.name}_")
    ctx.topics += list(doc["topics"])
    return isolated_pipeline(ctx.endpoints.kafka, ctx.run_dir / f"topology-{workload.name}.yaml", doc)


def gateway(ctx: Context, workload: Workload, profile_to: Path | None = None) -> Measurement:
    pipeline = gateway_pipeline(ctx, workload)
    profiler: tuple[str, ...] = ()
    if profile_to is not None and profile_to.suffix == ".pyisession":
        profiler = ("-m", "pyinstrument", "-r", "pyisession", "-o", str(profile_to))
    elif profile_to is not None:
        profiler = ("-m", "cProfile", "-o", str(profile_to))
    server = start_gateway(ctx.endpoints, pipeline.path, ctx.run_dir, log=ctx.run_dir / f"gateway-{workload.name}.log",
                           ready="/_readiness", python=profiler, cpu=ctx.args.server_cpu, timeout=60)
    try:
        pids = {"server": server.process.pid, **ctx.service_pids}
        m = measure(ctx.args, "gateway", server.url, workload, ctx.token, pids)
        metrics = settled_counters(server.url)
    finally:
        died = not server.process.running
        # SIGINT under cProfile: KeyboardInterrupt lets cProfile write its file, SIGTERM would not.
        server.process.stop(signal.SIGINT if profile_to else signal.SIGTERM)
    if died:
        m.problems.append(f"the gateway died during the run: see {server.process.log}")
    check_kafka(ctx, m, pipeline.topology, metrics)
    return m


def capture_counters(metrics: Metrics) -> dict[str, float]:
    """The gateway's capture counters, as ``name{label=value,…}`` → value."""
    counters: dict[str, float] = {}
    for sample in metrics.samples:
        if sample.name.startswith("headwater_capture_") and sample.name.endswith("_total"):
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            counters[sample.name + (f"{{{label}}}" if label else "")] = sample.value
    return counters


def settled_counters(url: str, quiet: float = 1.0, timeout: float = 30.0) -> dict[str, float]:
    """The counters once the requests wrk left in flight are answered.

    The gateway counts no request in flight, so "answered" is: its producer's queue is empty and
    the counters did not move for ``quiet`` seconds.
    """
    last: dict[str, float] = {}

    def settled() -> dict[str, float] | None:
        nonlocal last
        metrics = scrape(url + "/metrics")
        current = capture_counters(metrics)
        moved, last = current != last, current
        idle = not metrics.value("headwater_capture_producer_queue")
        return current if current and idle and not moved else None

    counters = wait_until(settled, timeout, "the gateway's counters still moved after wrk stopped", interval=quiet)
    assert counters is not None
    return counters


def check_kafka(ctx: Context, m: Measurement, topology: Topology, metrics: dict[str, float]) -> None:
    """Events in Kafka == 200 answers times events per request (decoded, not watermarks)."""
    capture = topology.capture
    written = [capture.topic, capture.overflow_topic, capture.historical_topic, topology.pipeline.dead_letter]
    step(f"gateway · {m.workload}: reading back and decoding every envelope of {', '.join(written)}")
    started = time.monotonic()
    counts = count_events(ctx.endpoints.kafka, {t: topology.topics[t].partitions for t in written})
    decoded = sum(c.events_decoded for c in counts.values())
    by_header = sum(c.events_by_header for c in counts.values())
    messages = sum(c.messages for c in counts.values())
    ok_answers = int(metrics.get('headwater_capture_requests_total{status=200}', 0))
    other_answers = {k: int(v) for k, v in metrics.items()
                     if k.startswith("headwater_capture_requests_total") and "status=200" not in k and v}
    expected = ok_answers * m.events_per_request
    wrk_ok = m.requests + m.warmup_requests  # wrk saw no non-2xx when the run is valid
    # wrk stops with up to `connections` requests in flight per invocation (warm-up, measurement):
    # the gateway still answers them and writes their events, wrk does not count them.
    in_flight = ok_answers - wrk_ok
    m.kafka = {
        "topics": {topic: asdict(count) for topic, count in counts.items()},
        "messages": messages,
        "events_decoded": decoded,
        "events_by_header": by_header,
        "gateway_200_answers": ok_answers,
        "gateway_other_answers": other_answers,
        "expected_events": expected,
        "wrk_2xx_answers": wrk_ok,
        "answered_after_wrk_stopped": in_flight,
        "events_per_message": round(decoded / messages, 2) if messages else 0.0,
        "overflowed_events": int(metrics.get("headwater_capture_events_overflowed_total", 0)),
        "ingested_metric": int(metrics.get("headwater_capture_events_ingested_total", 0)),
        "read_seconds": round(time.monotonic() - started, 1),
    }
    if decoded != expected:
        m.problems.append(f"Kafka holds {decoded} events, expected {ok_answers} × {m.events_per_request} = {expected}")
    if by_header != decoded:
        m.problems.append(f"envelope count headers say {by_header} events, decoding found {decoded}")
    if not 0 <= in_flight <= 2 * m.connections:
        m.problems.append(f"the gateway answered {ok_answers} × 200, wrk counted {wrk_ok}: "
                          f"more than 2 × {m.connections} requests unaccounted for")
    if other_answers:
        m.problems.append(f"the gateway answered {other_answers}")
    verdict = "[green]match[/]" if decoded == expected == by_header else "[red]MISMATCH[/]"
    step(f"gateway · {m.workload}: {decoded:,} events in {messages:,} envelopes; 200 answers {ok_answers:,} × "
         f"{m.events_per_request} = {expected:,} → {verdict} ({in_flight} answered after wrk stopped)")
