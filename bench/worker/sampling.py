"""Sampling a value every few seconds in a background thread (the worker's RSS, an import's rows), a slope,
and a CPU window as shares of a core.

``Poller(read, every)`` calls ``read()`` at start and every ``every`` seconds until ``stop()``
(which takes one last sample); ``samples`` are ``(seconds since start, value)``. A ``read``
that raises is recorded as missing, not fatal: the worker may be gone when its RSS is read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from bench.cpu import CpuUse


class Poller:
    def __init__(self, read: Callable[[], float], every: float) -> None:
        self._read = read
        self._every = every
        self._stop = threading.Event()
        self._started = time.monotonic()
        self.samples: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="bench-poller", daemon=True)

    def start(self) -> Poller:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _sample(self) -> None:
        try:
            value = self._read()
        except Exception as exc:  # noqa: BLE001 - a missing sample is reported, the measurement goes on
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        self.samples.append((round(time.monotonic() - self._started, 2), value))

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self._every):
            self._sample()

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join(timeout=30)
        self._sample()
        return self.samples


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` samples, in value units per minute (0 with fewer than 2)."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in samples) / var


def cpu_shares(use: CpuUse, seconds: Mapping[str, float] | None = None) -> dict[str, float]:
    """CPU by process (``use``'s, plus ``seconds`` measured elsewhere) as % of one core over the window;
    ``irq``: interrupts on all cores; ``foreign``: the cores' busy time (less irq) that none of them used."""
    wall = max(use.wall_seconds, 1e-9)
    cpu = {name: round(100 * s / wall, 1) for name, s in {**use.process_seconds, **(seconds or {})}.items()}
    busy = sum(use.busy_percent[c] - use.irq_percent[c] for c in use.busy_percent)
    cpu["irq"] = round(sum(use.irq_percent.values()), 1)
    cpu["foreign"] = round(max(0.0, busy - sum(v for k, v in cpu.items() if k != "irq")), 1)
    return cpu
