"""Where a request's CPU goes, stage by stage, without a profiler's distortion (no server, no Kafka).

Times the gateway's own per-request steps (the functions ``capture_gateway.capture`` calls) on
the bodies ``make bench`` sends, each in a tight loop, and sets them beside the CPU a request
really costs in the last ``make bench`` (the server's CPU time per answered request). What the
stages do not explain is the rest of the request path: the HTTP server, Starlette's middleware
and request objects, awaiting the body and Kafka's acknowledgement. It calls a few of the
gateway's internals (``Publisher._keyed``, ``publish._SERIALIZER``): update it when they change.

    .venv/bin/python bench/stages.py
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop
from confluent_kafka import Producer

from capture_gateway import publish, telemetry
from capture_gateway.decode import RawRequest, decode_body
from capture_gateway.events import (
    CaptureContext,
    now_micros,
    parse_time,
    request_token,
    split_batch,
    to_raw_event,
    uuid7,
)
from capture_gateway.limits import HotKeys
from capture_gateway.producer import KafkaProducer
from capture_gateway.publish import Publisher
from capture_gateway.routing import route
from headwater.projects import Project
from schemas.envelope import event_key, pack
from streams.topology import load_topology

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "phc_bench_" + "0" * 32
POOL = 1000

# The same event shapes as bench/post.lua (~500 bytes of properties).
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


def bodies(workload: str, n: int = 50) -> list[bytes]:
    rng = random.Random(42)  # noqa: S311
    if workload == "single":
        return [orjson.dumps(event(i)) for i in range(POOL)]
    return [orjson.dumps({"api_key": TOKEN, "sent_at": "2024-11-22T04:33:20.500Z",
                          "batch": [event(rng.randrange(POOL)) for _ in range(n)]}) for _ in range(50)]


def timed(fn: Callable[[int], object], rounds: int) -> float:
    """Microseconds per call of ``fn(i)``, best of three loops of ``rounds``."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(rounds):
            fn(i)
        best = min(best, (time.perf_counter() - started) / rounds)
    return best * 1e6


def measure(workload: str) -> list[tuple[str, float]]:
    raw_bodies = bodies(workload)
    topology = load_topology(ROOT / "topology.yaml")
    project = Project(1, "bench", TOKEN)
    hot_keys = HotKeys(rate=1e9, burst=1e9)  # never hot: the live path, as in make bench
    # A producer whose broker does not exist: produce() only enqueues, which is what it costs the loop.
    producer = KafkaProducer.__new__(KafkaProducer)
    producer._producer = Producer({"bootstrap.servers": "127.0.0.1:9", "compression.type": "lz4",
                                   "queue.buffering.max.messages": 2_000_000, "log_level": 0,
                                   "queue.buffering.max.kbytes": 2_000_000})
    publisher = Publisher(producer, topology.capture, topology.pipeline.dead_letter)
    keyed = publisher._keyed

    requests = [RawRequest(body=b, query={}, content_type="application/json", content_encoding="") for b in raw_bodies]
    decoded = [split_batch(decode_body(r, 20 * 1024 * 1024)) for r in requests]
    ctx = CaptureContext(now=now_micros(), ip="127.0.0.1", sent_at_ms=None, engage=False)
    events = [[e for e in (to_raw_event(ev, TOKEN, b, ctx) for ev in b.events) if e] for b in decoded]
    routed = [route(evs, project, hot_keys) for evs in events]
    envelopes = [keyed(topology.capture.topic, 4, r.live, TOKEN, ctx.now) for r in routed]
    def key_of(e: Any) -> bytes:
        return event_key(e["token"], e["distinct_id"])

    size_of: Callable[[Any], int] = getattr(publish, "_size", lambda e: len(e["properties"]) + 200)
    packed = [pack(r.live, key_of=key_of, size_of=size_of, partitions=4) for r in routed]
    serializer = publish._SERIALIZER
    n = len(raw_bodies)
    per_request = len(decoded[0].events)
    rounds = 20_000 if workload == "single" else 400

    def produce(i: int) -> None:
        for message in envelopes[i % n]:
            partition = -1 if message.partition is None else message.partition
            producer._producer.produce(message.topic, value=message.value, key=message.key, partition=partition,
                                       headers=list(message.headers), on_delivery=lambda err, msg: None)

    def metrics(_: int) -> None:
        telemetry.PAYLOAD_BYTES.observe(1000)
        telemetry.EVENTS_RECEIVED.inc(per_request)
        telemetry.EVENTS_INGESTED.inc(per_request)
        telemetry.REQUEST_SECONDS.observe(0.001)
        telemetry.REQUESTS.labels("200").inc()

    loop = uvloop.new_event_loop()

    async def chunk() -> bytes:
        return b""

    async def waits(k: int) -> None:
        for _ in range(k):
            await asyncio.wait_for(chunk(), 10.0)

    async def plain(k: int) -> None:
        for _ in range(k):
            await chunk()

    k = 2_000
    wait_for_us = (timed(lambda _: loop.run_until_complete(waits(k)), 5) -
                   timed(lambda _: loop.run_until_complete(plain(k)), 5)) / k
    loop.close()

    stages = [
        ("parse JSON with orjson (all the ceiling does)", timed(lambda i: orjson.loads(raw_bodies[i % n]), rounds)),
        ("decode_body + split_batch + request_token",
         timed(lambda i: request_token(split_batch(decode_body(requests[i % n], 20 * 1024 * 1024))), rounds)),
        (f"to_raw_event × {per_request}",
         timed(lambda i: [to_raw_event(ev, TOKEN, decoded[i % n], ctx) for ev in decoded[i % n].events], rounds)),
        (f"  of which uuid7() × {per_request}", timed(lambda _: [uuid7() for _ in range(per_request)], rounds)),
        (f"  of which parse_time(timestamp, sent_at) × {per_request}",
         timed(lambda _: [(parse_time("2024-11-22T04:33:20.123Z"), parse_time("2024-11-22T04:33:20.500Z"))
                          for _ in range(per_request)], rounds)),
        (f"  of which orjson.dumps(properties) × {per_request}",
         timed(lambda i: [orjson.dumps(ev["properties"]) for ev in decoded[i % n].events], rounds)),
        ("route (restrictions, hot keys)", timed(lambda i: route(events[i % n], project, hot_keys), rounds)),
        ("pack + Avro encode + headers (Publisher._keyed)",
         timed(lambda i: keyed(topology.capture.topic, 4, routed[i % n].live, TOKEN, ctx.now), rounds)),
        ("  of which Avro encode (fastavro schemaless_writer)",
         timed(lambda i: [serializer.encode({"events": e.events}) for e in packed[i % n]], rounds)),
        ("  of which pack (partition per event key)",
         timed(lambda i: pack(routed[i % n].live, key_of=key_of, size_of=size_of, partitions=4), rounds)),
        (f"Producer.produce × {sum(len(e) for e in envelopes) / n:.1f} envelopes (enqueue only)",
         timed(produce, rounds)),
        ("Prometheus counters and histograms", timed(metrics, rounds)),
        ("asyncio.wait_for around a body chunk, × 2 (read_body)", 2 * wait_for_us),
    ]
    producer._producer.purge()
    return stages


def main() -> None:
    latest_path = ROOT / ".headwater" / "bench" / "latest.json"
    latest = json.loads(latest_path.read_text()) if latest_path.exists() else {"results": []}
    cost = {(r["server"], r["workload"]): r.get("server_cpu_us_per_request") or 1e6 / r["requests_per_s"]
            for r in latest["results"] if r["requests_per_s"]}
    for workload in ("single", "batch"):
        stages = measure(workload)
        print(f"\n{workload}: µs of CPU per request (one core)")
        for name, us in stages:
            print(f"  {us:9.1f}  {name}")
        gateway, ceiling = cost.get(("gateway", workload)), cost.get(("ceiling", workload))
        if gateway and ceiling:
            own = sum(us for name, us in stages[1:] if not name.startswith("  ")) - stages[0][1]
            print(f"  {'-' * 9}")
            print(f"  {ceiling:9.1f}  ceiling, whole request (last make bench: server CPU per request)")
            print(f"  {gateway:9.1f}  gateway, whole request (last make bench: server CPU per request)")
            print(f"  {gateway - ceiling:9.1f}  gateway − ceiling")
            print(f"  {own:9.1f}  of which the gateway's stages above (less the orjson.loads both do)")
            print(f"  {gateway - ceiling - own:9.1f}  the rest: what these loops miss (request URL, query and headers, "
                  "middleware, awaiting the body and Kafka's acknowledgements, delivery reports) and colder caches "
                  "than in a tight loop")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
