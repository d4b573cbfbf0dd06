"""End-to-end latency under live load, and the soak: the real SDK → gateway → Kafka → worker → ClickHouse.

One live pipeline (``bench.worker.live``: a fresh isolated topology, ``headwater gateway``
and ``headwater worker``, the worker pinned to the server core), primed with a few events
that must land first, then one load level after another (``LEVELS``: 50% and 90% of the
worker's maximum events/s). Each level is ``bench.worker.load``'s senders at that rate; its
latency is read from the rows (``live.latency``: ``inserted_at`` minus the send time, events sent
after ``warmup`` seconds), once every delivered event is a row.

The 50% level is also the soak: it runs ``soak_seconds`` (120 by default) while the worker's
VmRSS is sampled every ``RSS_EVERY`` seconds; the 90% level runs ``level_seconds``. During
each level the CPU of the worker, the gateway, the senders, ClickHouse and Kafka is read from
``/proc``, and so is the rest of the machine's (``foreign``), because on two cores the load
generator and the stack compete with the worker for them.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.console import step
from bench.cpu import CpuSampler
from bench.servers import Context
from bench.worker.live import Live, landed, latency, live_pipeline, to_kafka
from bench.worker.load import Load, send_load
from bench.worker.procfs import memory_mb
from bench.worker.sampling import Poller, cpu_shares, slope_per_minute
from tests.support.waiting import WaitTimeout

LEVELS = (0.5, 0.9)  # shares of the worker's maximum events/s
PRIME_EVENTS_PER_S, PRIME_SECONDS = 200.0, 2.0  # before the first level: the path works, caches are warm
RSS_EVERY = 5.0  # seconds between RSS samples during the soak
SATURATED_PERCENT = 95.0  # both cores at least this busy: the machine, not the worker, set the latency
P99_TARGET_MS = 2_000.0  # at 50% of the maximum
RSS_TARGET_MB = 400.0  # the worker's peak during the soak
FLAT_MB_PER_MIN = 5.0  # "flat": the second half's RSS slope below this


@dataclass
class LevelResult:
    """One load level: what was sent, what landed, how late."""

    name: str  # "50%"
    event: str
    share: float
    target_per_s: float
    achieved_per_s: float
    short: bool  # the senders did not reach the target rate
    seconds: float
    warmup_s: float
    sent: int  # queued by the SDK
    delivered: int  # sent, less what the SDK reported undelivered
    landed: int  # distinct uuids of the level in ClickHouse
    start_us: int = 0  # the senders' common start, wall clock µs
    last_sent_us: int = 0
    events: int = 0  # in the quantiles (sent after the warm-up)
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    kafka_p50_ms: float = 0.0  # send → the gateway's Kafka write (the SDK's queue and upload, the gateway)
    kafka_p99_ms: float = 0.0
    cpu_percent: dict[str, float] = field(default_factory=dict)  # % of one core, over the level
    busy_percent: dict[str, float] = field(default_factory=dict)  # per core
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def saturated(self) -> bool:
        """Both cores were busy: the senders and the stack competed with the worker for them."""
        return bool(self.busy_percent) and min(self.busy_percent.values()) >= SATURATED_PERCENT


@dataclass
class SoakResult:
    """The worker's resident set during the 50% level."""

    seconds: float
    every_s: float
    samples: list[tuple[float, float]]  # (seconds into the level, VmRSS MB)
    start_mb: float
    end_mb: float
    peak_sampled_mb: float
    peak_mb: float  # VmHWM at the end: the process's peak, between samples too
    slope_second_half_mb_per_min: float
    slope_all_mb_per_min: float

    @property
    def flat(self) -> bool:
        return self.slope_second_half_mb_per_min < FLAT_MB_PER_MIN


@dataclass
class LatencyPart:
    max_rate: float
    max_rate_source: str
    senders: int
    levels: list[LevelResult] = field(default_factory=list)
    soak: SoakResult | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems and all(level.valid for level in self.levels)

    def level(self, share: float) -> LevelResult | None:
        return next((level for level in self.levels if level.share == share), None)


def run_level(ctx: Context, live: Live, name: str, event: str, share: float, max_rate: float, seconds: float,
              warmup: float, senders: int, during: Poller | None = None) -> LevelResult:
    """``share * max_rate`` events/s for ``seconds`` through ``live``; the latency of events sent after ``warmup``.

    ``during``: a poller that runs while the senders send, stopped when they are done.
    """
    rate = share * max_rate
    step(f"{live.name} · {name}: {rate:,.0f} events/s for {seconds:g}s ({share:.0%} of {max_rate:,.0f}); "
         f"latency over the events sent after {warmup:g}s")
    sampler = CpuSampler({"worker": live.worker.pid, "gateway": live.gateway.process.pid, "bench": os.getpid(),
                          **ctx.service_pids})
    try:
        load: Load = send_load(live.url, ctx.token, rate, seconds, event, ctx.run_dir, senders, cpu=None)
    finally:
        if during is not None:
            during.stop()
    use = sampler.stop()
    result = LevelResult(name, event, share, round(rate, 1), round(load.achieved_per_s, 1), load.short, seconds,
                         warmup, load.queued, load.delivered, 0, load.start_us, load.last_sent_us,
                         cpu_percent=cpu_shares(use, {"senders": load.cpu_s}), busy_percent=use.busy_percent,
                         problems=list(load.problems))
    try:
        result.landed = landed(ctx, live, event, load.delivered)
    except WaitTimeout as exc:
        result.problems.append(str(exc).splitlines()[0])
        return result
    since = load.start_us + int(warmup * 1e6)
    found = latency(ctx, live.table, event, since)
    result.events, result.p50_ms, result.p95_ms, result.p99_ms, result.max_ms = (
        found.events, found.p50_ms, found.p95_ms, found.p99_ms, found.max_ms)
    result.kafka_p50_ms, result.kafka_p99_ms = to_kafka(ctx, live, event, since)
    step(f"{live.name} · {name}: {result.events:,} events after the warm-up: p50 {result.p50_ms:,.0f} ms, "
         f"p95 {result.p95_ms:,.0f} ms, p99 {result.p99_ms:,.0f} ms (to Kafka: p50 {result.kafka_p50_ms:,.0f}, "
         f"p99 {result.kafka_p99_ms:,.0f}); CPU (% of a core) "
         + ", ".join(f"{k} {v:.0f}" for k, v in result.cpu_percent.items()))
    return result


def prime(ctx: Context, live: Live) -> None:
    """A few events through the whole path, waited for: the worker is assigned, connections and caches are warm."""
    load = send_load(live.url, ctx.token, PRIME_EVENTS_PER_S, PRIME_SECONDS, "bench_prime", ctx.run_dir, 1, cpu=None)
    landed(ctx, live, "bench_prime", load.delivered, timeout=60)


def _soak(samples: list[tuple[float, float]], seconds: float, peak_mb: float) -> SoakResult:
    half = [(t, v) for t, v in samples if t >= seconds / 2]
    values = [v for _, v in samples] or [0.0]
    return SoakResult(seconds, RSS_EVERY, samples, round(values[0], 1), round(values[-1], 1), round(max(values), 1),
                      round(peak_mb, 1), round(slope_per_minute(half), 2), round(slope_per_minute(samples), 2))


def run_latency(ctx: Context, max_rate: float, source: str, soak_seconds: float, level_seconds: float,
                warmup: float, senders: int) -> LatencyPart:
    """The latency part: see the module docstring."""
    part = LatencyPart(round(max_rate, 1), source, senders)
    with live_pipeline(ctx, "latency", worker_cpu=ctx.args.server_cpu) as live:
        prime(ctx, live)
        for share in LEVELS:
            soak = share == LEVELS[0]
            poller = Poller(lambda: memory_mb(live.worker.pid)["VmRSS"], RSS_EVERY).start() if soak else None
            started = time.monotonic()
            level = run_level(ctx, live, f"{share:.0%}", f"bench_live_{round(share * 100)}", share, max_rate,
                              soak_seconds if soak else level_seconds, warmup, senders, during=poller)
            part.levels.append(level)
            if poller is not None:
                samples = [(t, round(v, 1)) for t, v in poller.samples]
                part.soak = _soak(samples, soak_seconds, memory_mb(live.worker.pid).get("VmHWM", 0.0))
                step(f"latency · soak: RSS {part.soak.start_mb:.0f} → {part.soak.end_mb:.0f} MB (peak "
                     f"{part.soak.peak_mb:.0f}), second half {part.soak.slope_second_half_mb_per_min:+.1f} MB/min "
                     f"over {time.monotonic() - started:.0f}s")
            if not live.worker.running:
                part.problems.append(f"the worker died: see {live.worker.log}")
                break
    return part


def level_json(level: LevelResult) -> dict[str, Any]:
    return {**asdict(level), "valid": level.valid, "saturated": level.saturated}
