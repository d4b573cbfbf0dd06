"""make bench: the gateway's throughput against the ceiling of a bare Starlette app, same machine, same client.

What it does, in one run (bench/README.md explains every number):

1. Brings up the local stack with ``headwater.stack.manager.up`` (reusing services that already
   run), migrates Postgres and ClickHouse, creates a project ``bench`` with a fresh token.
2. Ceiling: serves ``bench/baseline.py`` (Starlette + uvicorn, the gateway's uvicorn options),
   pinned with ``taskset`` to the server core, and loads it with ``wrk`` pinned to the client
   core: single events to ``/e/`` and 50-event batches to ``/batch/``.
3. Gateway: for each workload, an isolated topology (own topics, prefix ``bench<hex>_<workload>_``)
   is migrated to Kafka, ``headwater gateway`` is started on the server core, loaded the same
   way, its ``/metrics`` read, stopped (SIGTERM: the producer flushes), and every envelope of its
   capture and dead-letter topics is read back and decoded: the events in Kafka must equal the
   200 answers times the events per request.
4. Prints the table, writes it as JSON to ``<state dir>/bench/latest.json``, deletes the topics
   it created and stops the stack services it started (only those).

A run with a non-2xx answer, a socket error or a Kafka count that does not match is invalid
(exit status 1). ``--profile single|batch`` instead runs that gateway workload under cProfile
and prints the top functions of Headwater's code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from headwater.migrate import migrate_clickhouse, migrate_kafka, migrate_postgres
from headwater.runtime.projects import create_project
from headwater.runtime.settings import Endpoints, Settings
from headwater.runtime.topology import Topology, load_topology
from headwater.stack import manager
from headwater.stack.endpoints import resolve_endpoints
from headwater.stack.process import pick_port
from schemas.serializer import AvroSerializer

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PYTHON = sys.executable
console = Console(highlight=False, width=max(shutil.get_terminal_size((200, 40)).columns, 200))

SINGLES_RATIO_TARGET = 0.6  # gateway req/s ÷ ceiling req/s, single events
BATCH_EVENTS_TARGET = 50_000  # gateway events/s, 50-event batches, one core
NOISE_PERCENT = 15.0  # CPU of processes outside the benchmark (% of one core) above which a row is noisy
SATURATED_PERCENT = 95.0  # a server core less busy than this was not what limited throughput
HEADWATER_MODULES = ("capture_gateway/", "headwater/", "schemas/", "streams/")

RAW: AvroSerializer[dict[str, list[dict[str, Any]]]] = AvroSerializer("raw_envelope")
START = time.monotonic()


def step(message: str) -> None:
    console.print(f"[bold blue]==>[/] [dim]{time.monotonic() - START:6.1f}s[/] {message}")


# --- workloads and measurements --------------------------------------------------------------


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
class CpuUse:
    """Where the CPU went during a measurement: per core busy %, and CPU seconds per process."""

    busy_percent: dict[str, float] = field(default_factory=dict)  # cpu0, cpu1: everything but idle
    irq_percent: dict[str, float] = field(default_factory=dict)  # of which interrupts (loopback TCP runs here)
    steal_percent: dict[str, float] = field(default_factory=dict)  # of which taken by the hypervisor
    wall_seconds: float = 0.0
    process_seconds: dict[str, float] = field(default_factory=dict)  # server, wrk, kafka, postgres, …
    server_threads: dict[str, float] = field(default_factory=dict)  # the server's CPU seconds by thread group
    server_context_switches: int = 0  # all threads of the server, during the measurement


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


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_times() -> dict[str, tuple[int, int, int, int]]:
    """Per core: (busy, irq + softirq, steal, total) jiffies from /proc/stat."""
    times: dict[str, tuple[int, int, int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *rest = line.split()
        if re.fullmatch(r"cpu\d+", name):
            values = [int(v) for v in rest] + [0] * 8
            idle = values[3] + values[4]  # idle + iowait
            total = sum(values[:8])  # guest time is already inside user
            times[name] = (total - idle, values[5] + values[6], values[7], total)
    return times


def _process_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime, all threads


def _thread_seconds(pid: int) -> dict[int, tuple[str, float, float, int]]:
    """Per thread of ``pid``: (group, user seconds, kernel seconds, context switches). Groups: the
    event loop (main thread), librdkafka's threads by name (``rdk:broker…`` summed), and the other
    Python threads (``asyncio.to_thread`` workers, connection pools)."""
    threads: dict[int, tuple[str, float, float, int]] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            tid = int(task.name)
            with contextlib.suppress(OSError):
                comm = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                switches = sum(int(line.split()[1]) for line in (task / "status").read_text().splitlines()
                               if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
                if tid == pid:
                    group = "main thread (event loop)"
                elif comm.startswith("rdk:"):
                    group = "librdkafka " + re.sub(r"-?\d+$", "", comm.split("/")[0]).removeprefix("rdk:")
                else:
                    group = "other Python threads"
                threads[tid] = (group, int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS, switches)
    return threads


class CpuSampler:
    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._cores = _cpu_times()
        self._started = time.monotonic()
        self._seconds = {name: _process_seconds(pid) for name, pid in pids.items()}
        self._threads = _thread_seconds(pids["server"]) if "server" in pids else {}

    def stop(self) -> CpuUse:
        cores = _cpu_times()
        use = CpuUse()
        use.wall_seconds = round(time.monotonic() - self._started, 2)
        for name, (busy, irq, steal, total) in cores.items():
            b0, i0, s0, t0 = self._cores.get(name, (0, 0, 0, 0))
            elapsed = max(total - t0, 1)
            use.busy_percent[name] = round(100 * (busy - b0) / elapsed, 1)
            use.irq_percent[name] = round(100 * (irq - i0) / elapsed, 1)
            use.steal_percent[name] = round(100 * (steal - s0) / elapsed, 1)
        for name, pid in self._pids.items():
            use.process_seconds[name] = round(_process_seconds(pid) - self._seconds[name], 2)
        if "server" in self._pids:
            groups: dict[str, float] = {}
            switches = 0
            for tid, (group, user, kernel, ctx) in _thread_seconds(self._pids["server"]).items():
                _, user0, kernel0, ctx0 = self._threads.get(tid, (group, 0.0, 0.0, 0))
                if group.startswith("main"):
                    groups[group + " user"] = user - user0
                    groups[group + " kernel"] = kernel - kernel0
                else:
                    groups[group] = groups.get(group, 0.0) + user + kernel - user0 - kernel0
                switches += ctx - ctx0
            use.server_threads = {g: round(v, 2) for g, v in sorted(groups.items(), key=lambda i: -i[1])}
            use.server_context_switches = switches
        return use


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


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{tail(self.log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f}s:\n{tail(self.log)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Stop it (uvicorn shuts down gracefully, then re-raises the signal); None if it had died before."""
        if self.proc.poll() is not None:
            return None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def start_server(name: str, command: list[str], env: dict[str, str], log: Path, cpu: int | None) -> Server:
    with log.open("ab") as out:
        proc = subprocess.Popen([*pin(cpu), *command], env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT)
    return Server(name, proc, "", log)


# --- stack, topology, Kafka ------------------------------------------------------------------


TOPIC_KEYS = frozenset({"topic", "overflow_topic", "historical_topic", "source", "sources", "output", "dead_letter",
                        "warnings"})


def isolated_topology(prefix: str) -> dict[str, Any]:
    """The default topology with every topic and the app id prefixed, like tests/conftest.py's
    ``isolated_topology``, but by walking the document: a value under a topic-naming key (``TOPIC_KEYS``)
    that names a declared topic is renamed, wherever it sits, so new sections keep working."""
    doc: dict[str, Any] = load_topology(ROOT / "topology.yaml").model_dump(mode="json")
    topics = set(doc["topics"])

    def rename(value: Any) -> Any:
        if isinstance(value, str) and value in topics:
            return prefix + value
        if isinstance(value, list):
            return [rename(v) for v in value]
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rename(v) if k in TOPIC_KEYS and not isinstance(v, dict) else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    doc = walk(doc)
    doc["app_id"] = prefix + doc["app_id"]
    doc["topics"] = {prefix + name: spec for name, spec in doc["topics"].items()}
    return doc


def stack_env(endpoints: Endpoints) -> dict[str, str]:
    return {
        "HEADWATER_KAFKA_BOOTSTRAP": endpoints.kafka,
        "HEADWATER_POSTGRES_DSN": endpoints.postgres,
        "HEADWATER_REDIS_URL": endpoints.redis,
        "HEADWATER_CLICKHOUSE_URL": endpoints.clickhouse,
    }


def count_events(bootstrap: str, topics: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per topic: messages, events by the envelopes' ``count`` header, events by decoding every envelope."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-count-{uuid.uuid4()}",
                         "enable.auto.commit": False, "log_level": 0})
    counts: dict[str, dict[str, int]] = {}
    try:
        for topic, partitions in topics.items():
            total = {"messages": 0, "events_by_header": 0, "events_decoded": 0}
            ends: dict[int, int] = {}
            assignment = []
            for p in range(partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[p] = high
                    assignment.append(TopicPartition(topic, p, low))
            if assignment:
                consumer.assign(assignment)
                deadline = time.monotonic() + 300
                while ends and time.monotonic() < deadline:
                    for message in consumer.consume(num_messages=5000, timeout=1.0):
                        if message.error() is not None:
                            raise KafkaException(message.error())
                        total["messages"] += 1
                        headers = dict(message.headers() or [])
                        total["events_by_header"] += int(headers.get("count") or b"0")
                        total["events_decoded"] += len(RAW.decode(message.value() or b"")["events"])
                        partition, offset = message.partition() or 0, message.offset() or 0
                        if offset + 1 >= ends.get(partition, 0):
                            ends.pop(partition, None)
                if ends:
                    raise RuntimeError(f"{topic}: partitions {sorted(ends)} not read to their end within 300s")
                consumer.unassign()
            counts[topic] = total
    finally:
        consumer.close()
    return counts


def gateway_metrics(url: str) -> dict[str, float]:
    """The gateway's capture counters (Prometheus text from /metrics)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("headwater_capture_") or not sample.name.endswith("_total"):
                continue
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[sample.name + (f"{{{label}}}" if label else "")] = sample.value
    return values


def settled_metrics(url: str, quiet: float = 1.0, timeout: float = 30.0) -> dict[str, float]:
    """The counters once the requests wrk left in flight are answered: unchanged for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = gateway_metrics(url)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        current = gateway_metrics(url)
        if current == last:
            return current
        last = current
    raise RuntimeError(f"the gateway's counters still moved {timeout:.0f}s after wrk stopped")


# --- the run ---------------------------------------------------------------------------------


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
    server = start_server(name, [PYTHON, str(BENCH / "baseline.py"), "--port", str(port), *flags], {}, log,
                          ctx.args.server_cpu)
    server.url = f"http://127.0.0.1:{port}"
    results = []
    try:
        server.wait_ready("/_liveness")
        for workload in ctx.args.workloads:
            pids = {"server": server.proc.pid, **ctx.service_pids}
            results.append(measure(ctx.args, name, server.url, WORKLOADS[workload], ctx.token, pids))
    finally:
        if server.stop() is None:
            raise RuntimeError(f"{name} died during the run:\n{tail(server.log)}")
    return results


def ladder(ctx: Context) -> list[Measurement]:
    """The ceiling plus, one at a time, pieces of the gateway's path (bench/baseline.py's options)."""
    topic = f"bench{uuid.uuid4().hex[:6]}_ladder"
    admin = AdminClient({"bootstrap.servers": ctx.endpoints.kafka, "log_level": 0})
    for future in admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)]).values():
        future.result()
    ctx.topics.append(topic)
    results: list[Measurement] = []
    rungs = [
        ("ceiling +body", ("--read-body",)),
        ("ceiling +body +kafka", ("--read-body", "--kafka", ctx.endpoints.kafka, "--topic", topic)),
    ]
    for name, flags in rungs:
        results += ceiling(ctx, name, flags)
    return results


def gateway_topology(ctx: Context, workload: Workload) -> tuple[Path, Topology]:
    prefix = f"bench{uuid.uuid4().hex[:6]}_{workload.name}_"
    path = ctx.run_dir / f"topology-{workload.name}.yaml"
    path.write_text(json.dumps(isolated_topology(prefix), indent=2))  # JSON is YAML
    topology = load_topology(path)
    ctx.topics += list(topology.topics)
    migrate_kafka(ctx.endpoints.kafka, topology, lambda _: None)
    return path, topology


def gateway(ctx: Context, workload: Workload, profile_to: Path | None = None) -> Measurement:
    path, topology = gateway_topology(ctx, workload)
    port = pick_port(0)
    env = {**stack_env(ctx.endpoints), "HEADWATER_TOPOLOGY": str(path), "HEADWATER_GATEWAY_PORT": str(port)}
    cli = ["-m", "headwater.cli", "gateway", "--port", str(port)]
    command = [PYTHON, *cli]
    if profile_to is not None and profile_to.suffix == ".pyisession":
        command = [PYTHON, "-m", "pyinstrument", "-r", "pyisession", "-o", str(profile_to), *cli]
    elif profile_to is not None:
        command = [PYTHON, "-m", "cProfile", "-o", str(profile_to), *cli]
    server = start_server("gateway", command, env, ctx.run_dir / f"gateway-{workload.name}.log", ctx.args.server_cpu)
    server.url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready("/_readiness")
        pids = {"server": server.proc.pid, **ctx.service_pids}
        m = measure(ctx.args, "gateway", server.url, workload, ctx.token, pids)
        metrics = settled_metrics(server.url)
    finally:
        # SIGINT under cProfile: KeyboardInterrupt lets cProfile write its file, SIGTERM would not.
        code = server.stop(signal.SIGINT if profile_to else signal.SIGTERM)
    if code is None:
        m.problems.append(f"the gateway died during the run: see {server.log}")
    check_kafka(ctx, m, topology, metrics)
    return m


def check_kafka(ctx: Context, m: Measurement, topology: Topology, metrics: dict[str, float]) -> None:
    """Events in Kafka == 200 answers times events per request (decoded, not watermarks)."""
    capture = topology.capture
    written = [capture.topic, capture.overflow_topic, capture.historical_topic, topology.pipeline.dead_letter]
    step(f"gateway · {m.workload}: reading back and decoding every envelope of {', '.join(written)}")
    started = time.monotonic()
    counts = count_events(ctx.endpoints.kafka, {t: topology.topics[t].partitions for t in written})
    decoded = sum(c["events_decoded"] for c in counts.values())
    by_header = sum(c["events_by_header"] for c in counts.values())
    messages = sum(c["messages"] for c in counts.values())
    ok_answers = int(metrics.get('headwater_capture_requests_total{status=200}', 0))
    other_answers = {k: int(v) for k, v in metrics.items()
                     if k.startswith("headwater_capture_requests_total") and "status=200" not in k and v}
    expected = ok_answers * m.events_per_request
    wrk_ok = m.requests + m.warmup_requests  # wrk saw no non-2xx when the run is valid
    # wrk stops with up to `connections` requests in flight per invocation (warm-up, measurement):
    # the gateway still answers them and writes their events, wrk does not count them.
    in_flight = ok_answers - wrk_ok
    m.kafka = {
        "topics": counts,
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


@contextlib.contextmanager
def local_stack(settings: Settings, keep: bool) -> Iterator[Endpoints]:
    before = {s.name for s in manager.status(settings) if s.state in {"running", "external"}}
    step(f"local stack: already running {sorted(before) or 'nothing'}")
    started = {s.name for s in manager.SERVICES} - before
    try:
        manager.up(settings, lambda message: step(f"  {message}"))
        endpoints = resolve_endpoints(settings)
        migrate_postgres(endpoints.postgres, lambda _: None)
        asyncio.run(migrate_clickhouse(endpoints.clickhouse, lambda _: None))
        yield endpoints
    finally:
        if started and not keep:
            step(f"stopping what this run started: {', '.join(sorted(started))}")
            manager.down(settings, only=started)


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    if not topics:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    for name, future in admin.delete_topics(topics, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            console.print(f"[yellow]could not delete topic {name}: {exc}[/]")


def service_pids(settings: Settings) -> dict[str, int]:
    return {s.name: s.pid for s in manager.status(settings) if s.pid is not None and s.state == "running"}


def check_tools(args: argparse.Namespace) -> None:
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"make bench needs {' and '.join(missing)} (Debian: apt-get install wrk util-linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if args.server_cpu == args.client_cpu or {args.server_cpu, args.client_cpu} - set(cpus):
        raise SystemExit(f"--server-cpu and --client-cpu must be two different CPUs of {cpus}")


# --- report ----------------------------------------------------------------------------------


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


# --- profile ---------------------------------------------------------------------------------


def print_profile(path: Path, limit: int, requests: int) -> None:
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative")
    out = path.with_suffix(".txt")
    with out.open("w") as handle:
        pstats.Stats(str(path), stream=handle).sort_stats("cumulative").print_stats(80)
        pstats.Stats(str(path), stream=handle).sort_stats("tottime").print_stats(60)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = max((value[3] for value in raw.values()), default=1.0)
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in raw.items():
        rel = filename.replace(str(ROOT) + "/", "")
        if rel.startswith(HEADWATER_MODULES) and (nc < 0 or nc >= 100):  # per-request functions, not start-up
            rows.append((ct, tt, nc, f"{rel}:{line}({func})"))
    rows.sort(reverse=True)
    table = Table(title=f"Headwater functions by cumulative time ({path.name}; the main thread only; "
                        f"{requests:,} requests answered, warm-up included)", title_justify="left")
    for column in ("cumulative s", "% of main thread", "µs/request", "own s", "calls", "function"):
        table.add_column(column, justify="left" if column == "function" else "right")
    for ct, tt, nc, name in rows[:limit]:
        table.add_row(f"{ct:.2f}", f"{100 * ct / total:.0f}%", f"{1e6 * ct / max(requests, 1):.0f}", f"{tt:.2f}",
                      f"{nc:,}" if nc >= 0 else "-", name)
    console.print(table)
    own = sorted(((tt, nc, f"{f.replace(str(ROOT) + '/', '')}:{ln}({fn})")
                  for (f, ln, fn), (_cc, nc, tt, _ct, _c) in raw.items() if nc < 0 or nc >= 100), reverse=True)
    table = Table(title="All functions by own time (top 25; called ≥ 100 times)", title_justify="left")
    for column in ("own s", "calls", "function"):
        table.add_column(column, justify="left" if column == "function" else "right")
    for tt, nc, name in own[:25]:
        table.add_row(f"{tt:.2f}", f"{nc:,}", name)
    console.print(table)
    console.print(f"full listing: {out}")


def pyinstrument_to_pstats(session: Path) -> Path:
    """Render a pyinstrument session as a call tree (text) and as pstats (for the tables)."""
    out = session.with_suffix(".prof")
    base = [PYTHON, "-m", "pyinstrument", "--load", str(session)]
    subprocess.run([*base, "-r", "pstats", "-o", str(out)], check=True, cwd=ROOT)
    subprocess.run([*base, "-r", "text", "--show", "*/capture_gateway/*",
                    "-p", "processor_options.filter_threshold=0.005", "-o", str(session.with_suffix(".tree.txt"))],
                   check=True, cwd=ROOT)
    console.print(f"call tree: {session.with_suffix('.tree.txt')}")
    return out


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before each (default 3)")
    parser.add_argument("--connections", type=int, default=None,
                        help="wrk connections for every workload (default: 128 for single, 32 for batch)")
    parser.add_argument("--server-cpu", type=int, default=0, help="the core the server is pinned to (default 0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="the core wrk is pinned to (default 1)")
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["single", "batch"])
    parser.add_argument("--profile", choices=sorted(WORKLOADS),
                        help="only run this gateway workload under cProfile and print its hot spots")
    parser.add_argument("--ladder", action="store_true",
                        help="also measure the ceiling plus the gateway's middleware, body read and Kafka write")
    parser.add_argument("--profiler", choices=["cprofile", "pyinstrument"], default="cprofile",
                        help="with --profile: cProfile (stdlib, deterministic, slows calls) or pyinstrument "
                             "(sampling; pip install it into .venv first)")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the topics this run created")
    parser.add_argument("--keep-stack", action="store_true", help="leave services this run started running")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    os.chdir(ROOT)
    check_tools(args)
    settings = Settings()
    started = datetime.now(UTC)
    run_dir = settings.state_dir.resolve() / "bench" / started.strftime("%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=True)
    results: list[Measurement] = []
    with local_stack(settings, args.keep_stack) as endpoints:
        token = f"phc_bench_{uuid.uuid4().hex}"
        project = asyncio.run(create_project(endpoints.postgres, "bench", token))
        step(f"project bench (id {project.id}), token {token}; logs in {run_dir}")
        ctx = Context(args, settings, endpoints, token, run_dir, service_pids(settings))
        try:
            if args.profile:
                suffix = ".pyisession" if args.profiler == "pyinstrument" else ".prof"
                prof = run_dir / f"gateway-{args.profile}{suffix}"
                m = gateway(ctx, WORKLOADS[args.profile], profile_to=prof)
                console.print(f"under {args.profiler} (not a throughput number): {m.requests_per_s:,.0f} req/s, "
                              f"{m.events_per_s:,.0f} events/s; problems: {m.problems or 'none'}")
                answered = m.kafka["gateway_200_answers"] if m.kafka else m.requests
                print_profile(pyinstrument_to_pstats(prof) if args.profiler == "pyinstrument" else prof, 30, answered)
                return 0 if m.valid else 1
            results += ceiling(ctx)
            if args.ladder:
                results += ladder(ctx)
            for name in args.workloads:
                results.append(gateway(ctx, WORKLOADS[name]))
        finally:
            if not args.keep_topics:
                delete_topics(endpoints.kafka, ctx.topics)
    targets = summary(results)
    print_report(results, targets, args)
    latest = settings.state_dir.resolve() / "bench" / "latest.json"
    write_json(latest, results, targets, args, started)
    write_json(run_dir / "result.json", results, targets, args, started)
    console.print(f"written to {latest}")
    valid = all(m.valid for m in results)
    if not valid:
        console.print("[red]this run is INVALID: see the problems above[/]")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
