"""One load sender: the real PostHog Python SDK calling ``capture()`` at a paced rate (a token bucket).

``python -m bench.worker.sender --url URL --token T --rate R --seconds S --event NAME --stats FILE``

Waits until the wall clock reaches ``--start-at`` (so several senders start together), then
calls ``Posthog.capture`` ``R`` times a second for at most ``S`` seconds and at most ``R * S``
events (bounded in count and in time). Each event carries its send time, the wall clock in µs
taken just before ``capture()``, in the property ``bench_sent_us``: ClickHouse's ``inserted_at``
minus it is the event's end-to-end latency (same machine, same clock). The bucket holds at
most ``BURST_SECONDS`` of credit: a sender that falls behind (its core is busy) does not catch
up in a burst, it sends fewer events, and its stats say so (``achieved_per_s``).

Two things keep the load generator from taking the cores of what it measures (two cores for
everything): the process runs at nice 19, and the SDK's ``system_context()``, which it calls
on every ``capture()`` to read the OS release again, is memoised (same properties, same
requests; ~45 of the ~65 µs a capture costs). The SDK is otherwise used as is.

At the end the SDK's queue is flushed (``shutdown``) and the stats are written as JSON: events
planned, queued by ``capture()``, refused by the SDK (queue full), in batches the SDK could not
deliver (``on_error``), the send window and the process's CPU seconds.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import posthog.client
from posthog import Posthog

BURST_SECONDS = 0.05  # at most this much credit: a late sender does not catch up in a burst
TICK_SECONDS = 0.002  # sleep at least this long between bursts: a wake-up per event would cost more than the event
FLUSH_AT = 50  # events per SDK request (the SDK's default is 100)
FLUSH_INTERVAL = 0.05  # seconds the SDK waits for a batch to fill
MAX_QUEUE = 100_000  # the SDK's queue: large, so a slow upload shows as latency, not as refused events
DISTINCT_IDS = 1_000
NICENESS = 19  # the load generator yields the cores to what it measures: short of CPU, it falls behind, flagged


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the gateway, http://127.0.0.1:PORT")
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seconds", type=float, required=True, help="send for at most this long")
    parser.add_argument("--event", required=True, help="the events' name (one per load level)")
    parser.add_argument("--stats", type=Path, required=True, help="write the stats here (JSON)")
    parser.add_argument("--start-at", type=float, default=0.0, help="wall clock (s since the epoch) to begin at")
    parser.add_argument("--name", default="s0", help="this sender's name: part of its distinct ids")
    return parser.parse_args(argv)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memoise_system_context() -> None:
    """Compute the SDK's per-event ``system_context()`` once: the same dict every call in one process.

    posthog-python calls it on every ``capture()``, and it asks ``distro`` for the OS release each
    time: ~45 of the ~65 µs a capture costs. Memoised, the events and requests are unchanged and a
    sender costs ~17 µs per capture, so the load generator leaves the cores to what is measured.
    """
    client_module: Any = posthog.client
    client_module.system_context = functools.cache(client_module.system_context)


def send(args: argparse.Namespace) -> dict[str, Any]:
    memoise_system_context()
    failed = 0

    def on_error(_: Exception, batch: list[Any]) -> None:
        nonlocal failed
        failed += len(batch)

    client = Posthog(args.token, host=args.url, flush_at=FLUSH_AT, flush_interval=FLUSH_INTERVAL,
                     max_queue_size=MAX_QUEUE, on_error=on_error, max_retries=3, timeout=15)
    planned = int(args.rate * args.seconds)
    burst = max(1.0, args.rate * BURST_SECONDS)
    time.sleep(max(0.0, args.start_at - time.time()))
    queued = refused = 0
    first_us = last_us = 0
    started = last = time.monotonic()
    deadline = started + args.seconds
    tokens = 1.0
    while queued + refused < planned:
        now = time.monotonic()
        if now >= deadline:
            break
        tokens = min(burst, tokens + (now - last) * args.rate)
        last = now
        if tokens < 1.0:
            time.sleep(max(TICK_SECONDS, min((1.0 - tokens) / args.rate, deadline - now)))
            continue
        for _ in range(min(int(tokens), planned - queued - refused)):
            sent_us = time.time_ns() // 1000
            i = queued + refused
            ok = client.capture(args.event, distinct_id=f"{args.name}-user-{i % DISTINCT_IDS}",
                                properties={"bench_sent_us": sent_us, "i": i, "plan": "pro"})
            if ok is None:
                refused += 1
            else:
                queued += 1
            first_us = first_us or sent_us
            last_us = sent_us
            tokens -= 1.0
    send_seconds = time.monotonic() - started
    flush_started = time.monotonic()
    client.shutdown()  # flushes the queue: every queued event is delivered or reported to on_error
    return {
        "name": args.name, "event": args.event, "rate": args.rate, "seconds": args.seconds, "planned": planned,
        "queued": queued, "refused": refused, "failed": failed, "first_sent_us": first_us, "last_sent_us": last_us,
        "send_seconds": round(send_seconds, 3), "flush_seconds": round(time.monotonic() - flush_started, 3),
        "achieved_per_s": round((queued + refused) / send_seconds, 1) if send_seconds else 0.0,
        "cpu_s": round(_cpu_seconds(), 2), "flush_at": FLUSH_AT, "flush_interval_s": FLUSH_INTERVAL,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.nice(NICENESS)
    stats = send(args)
    args.stats.write_text(json.dumps(stats) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
