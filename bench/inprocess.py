"""The gateway's own CPU per request, without HTTP or Kafka: its ASGI capture path in a loop.

Drives ``CaptureEndpoints`` (everything ``capture_gateway`` does to a request: body read,
decoding, token lookup, per-event rules, limits, routing, group commit, envelopes, Avro,
metrics) with the bodies ``make bench`` sends, from 32 concurrent callers, on uvloop. A
stand-in producer takes the place of librdkafka at the I/O seam and acknowledges every
message on the next loop turn; the project lookup answers from memory. What this does not
count is uvicorn's HTTP parsing, the sockets and librdkafka's threads: the difference from the
server's ``cpu µs/req`` in ``make bench``.

    .venv/bin/python bench/inprocess.py [single|batch ...] [--profile]

``--profile`` runs the loop under cProfile and prints the 25 functions with the most own time
(cProfile slows every call, so only the proportions mean something).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capture_gateway.app import capture_endpoints  # noqa: E402
from capture_gateway.asgi import CaptureEndpoints  # noqa: E402
from capture_gateway.bodies import BodyReader  # noqa: E402
from capture_gateway.context import GatewayContext  # noqa: E402
from capture_gateway.limits import HotKeys, QuotaTracker, RateLimiter  # noqa: E402
from capture_gateway.producer import OutgoingMessage  # noqa: E402
from capture_gateway.publish import Publisher  # noqa: E402
from headwater.runtime.gc_tuning import tune_gc  # noqa: E402
from headwater.runtime.projects import Project  # noqa: E402
from headwater.runtime.topology import load_topology  # noqa: E402
from headwater.runtime.topology.defaults import DEFAULT_TOPOLOGY  # noqa: E402

TOKEN = "phc_bench_" + "0" * 32
POOL = 1000
CALLERS = 32

# The event shapes of bench/post.lua (~500 bytes of posthog-js-like properties).
VARIANTS = [
    ("$pageview", "https://example.com/pricing", "/pricing", "Chrome", 126, "Mac OS X", "Desktop",
     "https://www.google.com/", 1512, 982),
    ("$pageview", "https://example.com/docs/quickstart", "/docs/quickstart", "Firefox", 128, "Windows", "Desktop",
     "$direct", 1920, 1080),
    ("$autocapture", "https://example.com/signup", "/signup", "Safari", 17, "iOS", "Mobile", "https://t.co/", 390, 844),
    ("signed_up", "https://example.com/welcome", "/welcome", "Chrome", 125, "Android", "Mobile",
     "https://news.ycombinator.com/", 412, 915),
]


def event(i: int) -> dict[str, Any]:
    name, url, path, browser, version, os_, device, ref, w, h = VARIANTS[i % len(VARIANTS)]
    distinct_id = f"user-{i:04d}-{(i * 2654435761) % 4294967296:08x}"
    return {"event": name, "distinct_id": distinct_id, "timestamp": "2024-11-22T04:33:20.123Z", "properties": {
        "token": TOKEN, "distinct_id": distinct_id, "$current_url": url, "$pathname": path, "$browser": browser,
        "$browser_version": version, "$os": os_, "$device_type": device, "$referrer": ref, "$screen_width": w,
        "$screen_height": h, "$viewport_width": w, "$viewport_height": h - 120, "$lib": "web",
        "$lib_version": "1.160.0", "$session_id": f"0192f1c4-7e2a-7c3b-9d4e-{i:012d}", "plan": "pro",
        "utm_source": "newsletter", "$time": 1732250000.123}}


def bodies(workload: str) -> tuple[str, list[bytes]]:
    rng = random.Random(42)  # noqa: S311
    if workload == "single":
        return "/e/", [orjson.dumps(event(i)) for i in range(POOL)]
    return "/batch/", [orjson.dumps({"api_key": TOKEN, "sent_at": "2024-11-22T04:33:20.500Z",
                                     "batch": [event(rng.randrange(POOL)) for _ in range(50)]}) for _ in range(50)]


class StandInProducer:
    """Acknowledges every message on the next loop turn (what ``KafkaProducer`` offers the publisher)."""

    timeout = 10.0

    def __init__(self) -> None:
        self.messages = 0
        self._pending: list[Callable[[str | None], None]] = []

    def cached_partitions(self, _topic: str) -> int:
        return 4

    def partitions_stale(self, _topic: str) -> bool:
        return False

    def produce(self, _message: OutgoingMessage, on_delivery: Callable[[str | None], None]) -> None:
        self.messages += 1
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._acknowledge)
        self._pending.append(on_delivery)

    def _acknowledge(self) -> None:
        pending, self._pending = self._pending, []
        for on_delivery in pending:
            on_delivery(None)


class Projects:
    def __init__(self, project: Project) -> None:
        self.project = project

    async def resolve(self, _token: str) -> Project:
        return self.project


class _State:
    gateway: GatewayContext


class _App:
    state = _State()


async def run(workload: str, requests: int, profile: bool) -> None:
    topology = load_topology(DEFAULT_TOPOLOGY)
    producer = StandInProducer()
    _App.state.gateway = GatewayContext(
        topology=topology, producer=producer,  # type: ignore[arg-type]
        publisher=Publisher(producer, topology.capture, topology.pipeline.dead_letter),  # type: ignore[arg-type]
        projects=Projects(Project(1, "bench", TOKEN)),  # type: ignore[arg-type]
        rate_limiter=RateLimiter(),
        quotas=QuotaTracker(aioredis.Redis(port=9)),  # never asked: the bench's project has no quota
        hot_keys=HotKeys(rate=1e9, burst=1e9),  # never hot: the live path, as in make bench
        trusted_proxies=frozenset(), bodies=BodyReader(10.0))
    app = CaptureEndpoints(lambda *_: None, capture_endpoints())  # type: ignore[arg-type]
    path, payloads = bodies(workload)
    answers: list[int] = []

    async def caller(n: int) -> None:
        for i in range(n):
            body = payloads[(i * 7919) % len(payloads)]
            scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "app": _App,
                     "client": ("127.0.0.1", 40000),
                     "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                                 (b"content-length", str(len(body)).encode())]}

            async def receive(body: bytes = body) -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    answers.append(message["status"])

            await app(scope, receive, send)

    tune_gc()
    await asyncio.gather(*(caller(50) for _ in range(CALLERS)))  # warm-up
    answers.clear()
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    await asyncio.gather(*(caller(requests // CALLERS) for _ in range(CALLERS)))
    if profiler:
        profiler.disable()
    cpu = time.process_time() - started
    events = 1 if workload == "single" else 50
    if set(answers) != {200}:
        raise SystemExit(f"the gateway answered {sorted(set(answers))}, not only 200")
    print(f"{workload:6}  {cpu / len(answers) * 1e6:8.1f} µs CPU per request"
          f"  {len(answers) * events / cpu:10,.0f} events/s"
          f"  {len(answers) / producer.messages:5.1f} requests per Kafka message")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", help="single, batch (default: both)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    workloads = args.workloads or ["single", "batch"]
    if not set(workloads) <= {"single", "batch"}:
        parser.error("workloads are single and batch")
    for workload in workloads:
        uvloop.run(run(workload, 32_000 if workload == "single" else 3_200, args.profile))


if __name__ == "__main__":
    main()
