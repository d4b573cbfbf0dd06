"""The ops page's background sampler: every ``interval`` seconds it samples the readers' lag (the
same ``Sampler`` and report as ``headwater lag``), scrapes the worker's ``/metrics``, and every
``dead_letter_every`` seconds tallies what is new on the dead-letter topic; it keeps the latest
state for ``/api/state`` and an hour of points for the charts.

It runs in a thread of its own because the Kafka calls block. A source that fails (Kafka down,
the worker not running) is shown as an error on the page and tried again on the next round; it
never stops the page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headwater.ops.lag import Sampler
from headwater.ops.page.dlq import DeadLetterTally
from headwater.ops.page.history import History, point
from headwater.ops.page.metrics import FRESHNESS_OBJECTIVE_SECONDS, WorkerMetrics, rates, scrape, sink_rates

log = logging.getLogger("headwater.ops")


@dataclass
class Collector:
    """Samples in a thread (``start``/``stop``); ``state()`` and ``history`` are safe to read from any thread."""

    sampler: Sampler
    stages: list[str]  # the pipeline's stages, in order
    sinks: list[str]
    metrics_url: str
    dead_letters: DeadLetterTally | None
    interval: float = 2.0
    window: float = 10.0  # seconds the rates (lag report's and metrics') are taken over
    dead_letter_every: float = 5.0
    scrape_metrics: Callable[[str, float], WorkerMetrics] = scrape
    clock: Callable[[], float] = time.time
    history: History = field(default_factory=History)
    _state: dict[str, Any] = field(default_factory=dict)
    _scrapes: deque[WorkerMetrics] = field(default_factory=deque)
    _errors: dict[str, str] = field(default_factory=dict)
    _dlq_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="headwater-ops-collector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.sampler.probe.close()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.step()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def step(self) -> None:
        """One round: lag, metrics, dead letters (when due), then the state and a history point."""
        report = self._guard("lag", self._lag)
        metrics = self._guard("metrics", self._metrics)
        now = self.clock()
        if self.dead_letters is not None and now - self._dlq_at >= self.dead_letter_every:
            self._dlq_at = now
            self._guard("dead_letters", self.dead_letters.refresh)
        stages, sinks, events = self._worker_view(metrics)
        state = {
            "at": now, "interval": self.interval, "window_seconds": self.window, "lag": report,
            "stages": stages, "sinks": sinks, "freshness": _freshness(sinks),
            "worker": {"metrics_url": self.metrics_url, "up": metrics is not None},
            "dead_letters": self.dead_letters.to_json() if self.dead_letters is not None else None,
            "errors": dict(self._errors),
        }
        if report is not None:
            self.history.add(point(now, report, events))
        state["points"] = len(self.history)
        with self._lock:
            self._state = state

    def _guard(self, source: str, call: Callable[[], Any]) -> Any:
        """``call()``, or None with the error kept for the page (it is tried again next round)."""
        try:
            value = call()
        except Exception as exc:  # noqa: BLE001  # any failure of a source is shown on the page, never fatal
            message = f"{type(exc).__name__}: {exc}"
            if self._errors.get(source) != message:
                log.warning("ops page: %s: %s", source, message)
            self._errors[source] = message
            return None
        self._errors.pop(source, None)
        return value

    def _lag(self) -> dict[str, Any]:
        self.sampler.sample()
        return self.sampler.report().to_json()

    def _metrics(self) -> WorkerMetrics:
        scraped = self.scrape_metrics(self.metrics_url, self.clock())
        self._scrapes.append(scraped)
        while len(self._scrapes) > 2 and scraped.at - self._scrapes[1].at >= self.window:
            self._scrapes.popleft()
        return scraped

    def _worker_view(self, now: WorkerMetrics | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                 float | None]:
        """Per stage and per sink: totals and rates over the window; the last stage's events/s."""
        before = self._scrapes[0] if len(self._scrapes) > 1 else None
        stage_rates = rates(before, now) if now is not None else {}
        sink_rate = sink_rates(before, now) if now is not None else {}
        stages = []
        for name in self.stages:
            totals = now.stages.get(name, {}) if now is not None else {}
            stages.append({"stage": name, "totals": totals, "rates": stage_rates.get(name, {}),
                           "errors": totals.get("drop", 0.0) + totals.get("deadletter", 0.0)})
        sinks = []
        for name in self.sinks:
            freshness = now.freshness.get(name) if now is not None else None
            sinks.append({"sink": name, "totals": now.sinks.get(name, {}) if now is not None else {},
                          "rates": sink_rate.get(name, {}), "freshness_seconds": freshness,
                          "end_to_end_seconds": now.end_to_end.get(name) if now is not None else None,
                          "fresh": None if freshness is None else freshness <= FRESHNESS_OBJECTIVE_SECONDS})
        last = stage_rates.get(self.stages[-1], {}).get("ok") if self.stages else None
        return stages, sinks, last


def _freshness(sinks: list[dict[str, Any]]) -> dict[str, Any]:
    """The worst sink's freshness against the objective (None when the worker has no freshness gauge)."""
    known = [s["freshness_seconds"] for s in sinks if s["freshness_seconds"] is not None]
    worst = max(known, default=None)
    return {"objective_seconds": FRESHNESS_OBJECTIVE_SECONDS, "worst_seconds": worst,
            "ok": None if worst is None else worst <= FRESHNESS_OBJECTIVE_SECONDS}
