"""Where the CPU went during a measurement: per core (``/proc/stat``), per process and per thread."""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path


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
