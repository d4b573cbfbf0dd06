"""Live load: several ``bench.worker.sender`` processes (the real PostHog SDK) at a total rate, then their stats.

The rate is split evenly between ``senders`` processes (one SDK client each: ``capture()`` and
the SDK's upload thread, one request at a time, share one GIL; together they cost ~85 µs of CPU
per event). They run at nice 19 (``bench.worker.sender``), start together (``--start-at``),
send for a bounded time and count, flush, and each writes its stats; ``send_load`` waits for
all of them with a deadline and sums them. A level whose senders sent below ``SHORTFALL`` of
the target rate is flagged SHORT.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.console import step
from tests.support.processes import PYTHON, Process
from tests.support.waiting import wait_until

START_DELAY = 2.0  # seconds between spawning the senders and their common start: imports, the SDK's set-up
FLUSH_GRACE = 60.0  # after the send window: the SDK's last uploads (and retries) must be done by then
SHORTFALL = 0.95  # achieved below this share of the target rate: flagged


@dataclass
class Load:
    """What the senders of one load level did, summed over them."""

    event: str
    target_per_s: float
    seconds: float
    senders: int
    planned: int = 0
    queued: int = 0  # capture() accepted them
    refused: int = 0  # capture() returned None (the SDK's queue was full)
    failed: int = 0  # in batches the SDK reported to on_error (not delivered)
    start_us: int = 0  # the common start, wall clock µs
    first_sent_us: int = 0
    last_sent_us: int = 0
    send_seconds: float = 0.0  # the longest sender's send window
    flush_seconds: float = 0.0
    cpu_s: float = 0.0  # all senders, start-up included
    problems: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        """Events the gateway should have: queued by the SDK, not reported failed."""
        return self.queued - self.failed

    @property
    def achieved_per_s(self) -> float:
        """Events sent ÷ the send window (first to last send time over all senders)."""
        window = (self.last_sent_us - self.start_us) / 1e6
        return (self.queued + self.refused) / window if window > 0 else 0.0

    @property
    def short(self) -> bool:
        """The senders did not reach the target rate."""
        return self.achieved_per_s < SHORTFALL * self.target_per_s


def _exited(process: Process) -> Callable[[], bool]:
    return lambda: process.exit_code() is not None


def send_load(url: str, token: str, rate: float, seconds: float, event: str, run_dir: Path, senders: int,
              cpu: int | None) -> Load:
    """``rate`` events/s of ``event`` for ``seconds`` through the gateway at ``url``; returns when all are flushed."""
    load = Load(event, rate, seconds, senders)
    start_at = time.time() + START_DELAY
    load.start_us = int(start_at * 1e6)
    processes: list[tuple[Process, Path]] = []
    for n in range(senders):
        stats = run_dir / f"sender-{event}-{n}.json"
        stats.unlink(missing_ok=True)
        command = [PYTHON, "-m", "bench.worker.sender", "--url", url, "--token", token,
                   "--rate", f"{rate / senders:.3f}", "--seconds", f"{seconds:g}", "--event", event,
                   "--stats", str(stats), "--start-at", f"{start_at:.6f}", "--name", f"{event}-s{n}"]
        processes.append((Process(f"sender {n}", command, run_dir / f"sender-{event}-{n}.log", cpu=cpu).start(), stats))
    step(f"  {event}: {senders} senders, {rate:,.0f} events/s for {seconds:g}s (pids "
         f"{', '.join(str(p.pid) for p, _ in processes)}{'' if cpu is None else f', pinned to cpu{cpu}'})")
    try:
        for process, stats in processes:
            wait_until(_exited(process), START_DELAY + seconds + FLUSH_GRACE,
                       f"{process.name} did not finish sending and flushing", interval=0.2)
            if process.exit_code() != 0 or not stats.exists():
                load.problems.append(f"{process.name} exited with {process.exit_code()}: see {process.log}")
    finally:
        for process, _ in processes:
            process.stop()
    for _, stats in processes:
        if not stats.exists():
            continue
        s = json.loads(stats.read_text())
        load.planned += s["planned"]
        load.queued += s["queued"]
        load.refused += s["refused"]
        load.failed += s["failed"]
        load.first_sent_us = min(load.first_sent_us or s["first_sent_us"], s["first_sent_us"])
        load.last_sent_us = max(load.last_sent_us, s["last_sent_us"])
        load.send_seconds = max(load.send_seconds, s["send_seconds"])
        load.flush_seconds = max(load.flush_seconds, s["flush_seconds"])
        load.cpu_s += s["cpu_s"]
    if load.refused or load.failed:
        load.problems.append(f"the SDK refused {load.refused:,} events (queue full) and could not deliver "
                             f"{load.failed:,}")
    step(f"  {event}: {load.queued:,} of {load.planned:,} events sent, {load.achieved_per_s:,.0f} events/s "
         f"(target {rate:,.0f}{', [yellow]SHORT[/]' if load.short else ''}); senders' CPU {load.cpu_s:.1f}s")
    return load
