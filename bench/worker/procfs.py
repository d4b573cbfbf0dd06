"""What ``/proc`` says about one process: its CPU seconds (all threads, reaped children too; or with its live
children, ``tree_cpu_seconds``) and its memory."""

from __future__ import annotations

import os
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid``, plus cutime + cstime of the children it reaped; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the command name: state is field 3 of proc(5), so utime (14) … cstime (17) are [11:15]
    return sum(int(v) for v in fields[11:15]) / _CLOCK_TICKS


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            children.append(int(stat.parent.name))
    return children


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of ``pid`` and of its live children: a Postgres postmaster's own counters hold its
    backends' CPU only once it reaped them, and a worker's pooled connections live as long as the worker."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in _children(pid))


def memory_mb(pid: int) -> dict[str, float]:
    """``VmHWM`` (peak resident set) and ``VmRSS`` (now) of ``pid`` in MB (10^6 bytes); empty once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, float] = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in {"VmHWM", "VmRSS"}:
            found[key] = int(value.split()[0]) * 1024 / 1e6  # the kernel reports kB (KiB)
    return found
