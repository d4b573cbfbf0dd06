"""An hour of the ops page's numbers, for its charts: per reader (``role``) its lag in messages and
seconds and its throughput in and out; per stage, events out per second.

Bounded: at most ``max_points`` points, none older than ``span`` seconds. The page asks for the
points after the last it has (``since``), so a poll carries a point or two, not the hour.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

SPAN = 3600.0
MAX_POINTS = 3600


@dataclass(frozen=True)
class Point:
    at: float
    readers: dict[str, dict[str, float | None]]  # role → lag, lag_seconds, in, out
    events: float | None  # events/s out of the pipeline's last stage (ok), from the worker's metrics


def point(at: float, report: dict[str, Any], events: float | None) -> Point:
    """A history point from a lag report (``LagReport.to_json()``): each reader's totals."""
    readers: dict[str, dict[str, float | None]] = {}
    for group in report["groups"]:
        ins = [p["produce_rate"] for p in group["partitions"] if p["produce_rate"] is not None]
        outs = [p["consume_rate"] for p in group["partitions"] if p["consume_rate"] is not None]
        readers[group["role"]] = {"lag": group["lag"], "lag_seconds": group["lag_seconds"],
                                  "in": round(sum(ins), 3) if ins else None,
                                  "out": round(sum(outs), 3) if outs else None}
    return Point(at, readers, None if events is None else round(events, 3))


class History:
    """The last ``span`` seconds of points, oldest first (safe to share between threads)."""

    def __init__(self, span: float = SPAN, max_points: int = MAX_POINTS) -> None:
        self.span = span
        self._points: deque[Point] = deque(maxlen=max_points)
        self._lock = threading.Lock()

    def add(self, new: Point) -> None:
        with self._lock:
            self._points.append(new)
            while self._points and new.at - self._points[0].at > self.span:
                self._points.popleft()

    def __len__(self) -> int:
        return len(self._points)

    def to_json(self, since: float = 0.0) -> dict[str, Any]:
        with self._lock:
            points = [p for p in self._points if p.at > since]
        return {"span": self.span, "points": [{"at": p.at, "readers": p.readers, "events": p.events} for p in points]}
