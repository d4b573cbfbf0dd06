"""The workloads, ``wrk`` runs against a server, and what one measurement found."""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
from dataclasses import dataclass, field
from typing import Any

from bench.console import step
from bench.cpu import CpuSampler, CpuUse
from tests.support import ROOT

BENCH = ROOT / "bench"
NOISE_PERCENT = 15.0  # CPU of processes outside the benchmark (% of one core) above which a row is noisy
SATURATED_PERCENT = 95.0  # a server core less busy than this was not what limited throughput


@dataclass(frozen=True)
class Workload:
    name: str  # single | batch
    path: str
    events_per_request: int
    connections: int  # enough requests in flight to keep a server that awaits Kafka busy (README: Connections)


WORKLOADS = {
    "single": Workload("single", "/e/", 1, 128),
    "batch": Workload("batch", "/batch/", 50, 32),
}


def connections(args: argparse.Namespace, workload: Workload) -> int:
    return int(args.connections or workload.connections)


@dataclass
class Measurement:
    server: str  # ceiling | gateway
    workload: str
    events_per_request: int
    duration_s: float
    connections: int
    requests: int
    requests_per_s: float
    events_per_s: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    warmup_requests: int
    cpu: CpuUse
    kafka: dict[str, Any] | None = None  # gateway runs: the count check
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def foreign_percent(self) -> float:
        """CPU used by processes this benchmark did not start or measure, % of one core: both cores' busy
        time less interrupts, less the server, wrk and the stack's services (Kafka, Postgres, Redis, ClickHouse)."""
        cpu = self.cpu
        busy = sum(cpu.busy_percent[c] - cpu.irq_percent[c] for c in cpu.busy_percent) / 100 * cpu.wall_seconds
        ours = sum(cpu.process_seconds.values())
        return max(0.0, 100 * (busy - ours) / max(cpu.wall_seconds, 1e-9))

    server_core: str = "cpu0"

    @property
    def server_share(self) -> float:
        """% of its core the server process used (the rest: interrupts, foreign load, idle)."""
        return 100 * self.cpu.process_seconds.get("server", 0.0) / max(self.cpu.wall_seconds, 1e-9)

    @property
    def cpu_us_per_request(self) -> float:
        """The server's CPU time (all its threads) per answered request: robust to a server that was not saturated."""
        return 1e6 * self.cpu.process_seconds.get("server", 0.0) / max(self.requests, 1)

    @property
    def saturated(self) -> bool:
        """The server's core was busy (with the server, or interrupts the traffic caused): it was the bottleneck."""
        return self.cpu.busy_percent.get(self.server_core, 0.0) >= SATURATED_PERCENT

    @property
    def noisy(self) -> bool:
        return self.foreign_percent > NOISE_PERCENT or not self.saturated


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: dict[str, int]
    latency_us: dict[str, float]
    stdout: str


def run_wrk(args: argparse.Namespace, url: str, workload: Workload, token: str, seconds: float,
            pids: dict[str, int] | None = None) -> tuple[WrkResult, CpuUse | None]:
    command = [
        *pin(args.client_cpu), "wrk", "-t1", f"-c{connections(args, workload)}", f"-d{seconds:g}s", "--timeout", "10s",
        "--latency", "-s", str(BENCH / "post.lua"), url, "--", workload.name, token, str(workload.events_per_request),
    ]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    sampler = CpuSampler(pids) if pids is not None else None
    try:
        stdout, stderr = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"wrk did not finish within {seconds + 60:.0f}s") from None
    cpu = sampler.stop() if sampler else None
    if cpu is not None:  # wrk is reaped by now: its CPU time is in this process's children's usage
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.process_seconds["wrk"] = round(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 2)
    match = re.search(r"^BENCH_JSON (\{.*\})$", stdout, re.MULTILINE)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{stdout}\n{stderr}")
    data = json.loads(match.group(1))
    non_2xx_line = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", stdout)
    non_2xx = int(non_2xx_line.group(1)) if non_2xx_line else 0
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        non_2xx=max(non_2xx, data["errors_status"]),
        socket_errors={k: data[f"errors_{k}"] for k in ("connect", "read", "write", "timeout")},
        latency_us={k: float(data[f"latency_{k}_us"]) for k in ("p50", "p90", "p99", "max", "mean")},
        stdout=stdout,
    ), cpu


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None else []


def measure(args: argparse.Namespace, server: str, url: str, workload: Workload, token: str,
            pids: dict[str, int]) -> Measurement:
    step(f"{server} · {workload.name}: warm-up {args.warmup:g}s, then {args.duration:g}s with "
         f"{connections(args, workload)} connections")
    warm, _ = run_wrk(args, url, workload, token, args.warmup)
    result, cpu = run_wrk(args, url, workload, token, args.duration, pids)
    assert cpu is not None
    rps = result.requests / result.duration_s
    m = Measurement(
        server=server, workload=workload.name, events_per_request=workload.events_per_request,
        duration_s=round(result.duration_s, 2), connections=connections(args, workload), requests=result.requests,
        requests_per_s=round(rps, 1), events_per_s=round(rps * workload.events_per_request, 1),
        latency_p50_ms=result.latency_us["p50"] / 1000, latency_p90_ms=result.latency_us["p90"] / 1000,
        latency_p99_ms=result.latency_us["p99"] / 1000, latency_max_ms=result.latency_us["max"] / 1000,
        non_2xx=result.non_2xx + warm.non_2xx, socket_errors=_add(result.socket_errors, warm.socket_errors),
        warmup_requests=warm.requests, cpu=cpu, server_core=f"cpu{args.server_cpu}",
    )
    if m.non_2xx:
        m.problems.append(f"{m.non_2xx} non-2xx answers (warm-up included)")
    if any(m.socket_errors.values()):
        m.problems.append(f"socket errors {m.socket_errors}")
    step(f"{server} · {workload.name}: {m.requests_per_s:,.0f} req/s, {m.events_per_s:,.0f} events/s, "
         f"p50 {m.latency_p50_ms:.2f} ms, p99 {m.latency_p99_ms:.2f} ms, non-2xx {m.non_2xx}, "
         f"server {m.server_share:.0f}% of its core, foreign load {m.foreign_percent:.0f}% of a core")
    return m


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}
