"""The backlog the worker bench consumes: envelopes the real gateway wrote under the ``batch`` workload.

``gateway_backlog`` is ``bench.servers.gateway`` for the batch workload with one addition: if
the measurement (warm-up included) left fewer than ``minimum`` events accepted, wrk loads the
gateway further, unmeasured, until it did; every request answered then counts with the
warm-up's, so the Kafka check (every envelope decoded, events = 200 answers times 50, at most
two wrk runs' connections answered after wrk stopped) still holds. The same run
thus yields the gateway's batched events per CPU-second and the backlog.

``kept_backlog`` reuses the capture topics of an earlier run's ``--keep-topics`` (its
``topology-batch.yaml``): quicker when working on the consumers, without the gateway figure.

``produce_envelopes`` writes events the bench made itself (the historical import, the persons
workload) the way the gateway does: ``schemas.raw_writer.encode_raw_envelope``, the ``count``
header, each envelope on the partition of its ``token:distinct_id`` key (``flushes`` packs them
as a gateway flush would, with ``schemas.envelope.pack``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer

from bench.console import step
from bench.measure import WORKLOADS, Measurement, measure, run_wrk
from bench.servers import Context, check_kafka, gateway_pipeline, settled_counters
from headwater.runtime.topology import load_topology
from schemas.envelope import count_header, event_key, pack
from schemas.events import RawEvent
from schemas.raw_writer import encode_raw_envelope
from tests.support.kafka import count_events
from tests.support.processes import start_gateway
from tests.support.topology import Pipeline

TOP_UPS = 5  # at most this many extra wrk runs to reach the minimum
PRODUCE_TIMEOUT = 60.0  # Kafka takes no envelope, or has not acknowledged them all, for this long: an error


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


@dataclass(frozen=True)
class RawEnvelope:
    """One Kafka message of raw events: its partition, its key (None: the events' keys differ) and events."""

    partition: int
    key: bytes | None
    events: list[RawEvent]


def flushes(events: Iterable[RawEvent], partitions: int, per_flush: int) -> Iterator[RawEnvelope]:
    """``events`` in flushes of ``per_flush``, each packed per partition of ``token:distinct_id`` (the gateway's
    ``pack``): envelopes holding several distinct ids, as a gateway flush of many requests makes them."""
    flush: list[RawEvent] = []

    def packed() -> Iterator[RawEnvelope]:
        for envelope in pack(flush, key_of=lambda e: event_key(e["token"], e["distinct_id"]),
                             size_of=lambda e: len(e["properties"]) + 160, partitions=partitions):
            yield RawEnvelope(envelope.partition, envelope.key, envelope.events)

    for event in events:
        flush.append(event)
        if len(flush) == per_flush:
            yield from packed()
            flush = []
    if flush:
        yield from packed()


def produce_envelopes(kafka: str, topic: str, envelopes: Iterable[RawEnvelope]) -> dict[int, int]:
    """Write ``envelopes`` to ``topic`` (the gateway's encoding and ``count`` header), all acknowledged;
    events per partition."""
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 20, "acks": "all"})
    written: dict[int, int] = {}
    for envelope in envelopes:
        value = encode_raw_envelope(envelope.events)
        deadline = time.monotonic() + PRODUCE_TIMEOUT
        while True:
            try:
                producer.produce(topic, value, key=envelope.key, partition=envelope.partition,
                                 headers=[count_header(len(envelope.events))])
                break
            except BufferError:  # the producer's queue is full: let it deliver
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kafka took no envelope on {topic} for {PRODUCE_TIMEOUT:g}s") from None
                producer.poll(0.1)
        producer.poll(0)
        written[envelope.partition] = written.get(envelope.partition, 0) + len(envelope.events)
    if (left := producer.flush(PRODUCE_TIMEOUT)) != 0:
        raise RuntimeError(f"{left} envelopes were not delivered to {topic} within {PRODUCE_TIMEOUT:g}s")
    return written


def written_backlog(pipeline: Pipeline, kafka: str, envelopes: Sequence[RawEnvelope], origin: str) -> Backlog:
    """``envelopes`` written to ``pipeline``'s capture topic: a backlog of its pipeline sources."""
    topic = pipeline.topology.capture.topic
    produce_envelopes(kafka, topic, envelopes)
    sources = pipeline.topology.pipeline.sources
    events = {t: sum(len(e.events) for e in envelopes) if t == topic else 0 for t in sources}
    return Backlog(pipeline, events, {t: len(envelopes) if t == topic else 0 for t in sources}, origin)
