"""The backlog the worker bench consumes: envelopes the real gateway wrote under the ``batch`` workload.

``gateway_backlog`` is ``bench.servers.gateway`` for the batch workload with one addition: if
the measurement (warm-up included) left fewer than ``minimum`` events accepted, wrk loads the
gateway further, unmeasured, until it did; every request answered then counts with the
warm-up's, so the Kafka check (every envelope decoded, events = 200 answers times 50, at most
two wrk runs' connections answered after wrk stopped) still holds. The same run
thus yields the gateway's batched events per CPU-second and the backlog.

``kept_backlog`` reuses the capture topics of an earlier run's ``--keep-topics`` (its
``topology-batch.yaml``): quicker when working on the consumers, without the gateway figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.console import step
from bench.measure import WORKLOADS, Measurement, measure, run_wrk
from bench.servers import Context, check_kafka, gateway_pipeline, settled_counters
from headwater.runtime.topology import load_topology
from tests.support.kafka import count_events
from tests.support.processes import start_gateway
from tests.support.topology import Pipeline

TOP_UPS = 5  # at most this many extra wrk runs to reach the minimum


@dataclass(frozen=True)
class Backlog:
    """Envelopes in the pipeline sources of ``pipeline`` (an isolated topology), counted by decoding them."""

    pipeline: Pipeline
    events: dict[str, int]  # per source topic
    envelopes: dict[str, int]
    origin: str

    @property
    def total(self) -> int:
        return sum(self.events.values())

    @property
    def sources(self) -> list[str]:
        return list(self.pipeline.topology.pipeline.sources)


def _accepted(counters: dict[str, float], events_per_request: int) -> int:
    return int(counters.get("headwater_capture_requests_total{status=200}", 0)) * events_per_request


def gateway_backlog(ctx: Context, minimum: int) -> tuple[Measurement, Backlog]:
    """Measure the gateway under the batch workload, load it until ``minimum`` events were accepted; the backlog."""
    workload = WORKLOADS["batch"]
    pipeline = gateway_pipeline(ctx, workload)
    server = start_gateway(ctx.endpoints, pipeline.path, ctx.run_dir, log=ctx.run_dir / "gateway-batch.log",
                           ready="/_readiness", cpu=ctx.args.server_cpu, timeout=60)
    try:
        m = measure(ctx.args, "gateway", server.url, workload, ctx.token, {"server": server.process.pid,
                                                                             **ctx.service_pids})
        counters = settled_counters(server.url)
        for _ in range(TOP_UPS):
            accepted = _accepted(counters, workload.events_per_request)
            if accepted >= minimum:
                break
            seconds = math.ceil(1.2 * (minimum - accepted) / max(m.events_per_s, 5_000)) + 1
            step(f"gateway · batch: {accepted:,} events accepted, fewer than the backlog's {minimum:,}: "
                 f"{seconds}s more of wrk (not measured)")
            extra, _ = run_wrk(ctx.args, server.url, workload, ctx.token, seconds)
            m.non_2xx += extra.non_2xx
            m.socket_errors = {k: m.socket_errors.get(k, 0) + v for k, v in extra.socket_errors.items()}
            before, counters = counters, settled_counters(server.url)
            # every request it answered (wrk's and those wrk left in flight) counts with the warm-up's,
            # so the Kafka check's in-flight allowance still covers the warm-up and the measurement only
            m.warmup_requests += (_accepted(counters, 1) - _accepted(before, 1))
    finally:
        died = not server.process.running
        server.process.stop()
    if died:
        m.problems.append(f"the gateway died during the run: see {server.process.log}")
    check_kafka(ctx, m, pipeline.topology, counters)
    assert m.kafka is not None
    sources = pipeline.topology.pipeline.sources
    topics = m.kafka["topics"]
    backlog = Backlog(pipeline, {t: topics[t]["events_decoded"] for t in sources},
                      {t: topics[t]["messages"] for t in sources}, "the gateway under the batch workload")
    if backlog.total < minimum:
        m.problems.append(f"the backlog holds {backlog.total:,} events, fewer than {minimum:,}")
    return m, backlog


def kept_backlog(ctx: Context, topology: Path) -> Backlog:
    """The pipeline sources of a topology an earlier run kept (``--keep-topics``), counted again."""
    pipeline = Pipeline(topology, load_topology(topology))
    step(f"backlog: reading back and decoding every envelope of {', '.join(pipeline.pipeline_sources())}")
    counts = count_events(ctx.endpoints.kafka, pipeline.pipeline_sources())
    return Backlog(pipeline, {t: c.events_decoded for t, c in counts.items()},
                   {t: c.messages for t, c in counts.items()}, f"kept topics of {topology}")
