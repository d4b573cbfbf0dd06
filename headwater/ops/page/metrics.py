"""The worker's ``/metrics``, scraped and reduced to what the ops page shows: per-stage outcomes,
drops, dead letters, timeouts and retries; per-sink rows and freshness.

Counters are totals since the worker started; ``Rates`` turns two scrapes into per-second rates
(none across a restart, when a counter went backwards).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

FRESHNESS_OBJECTIVE_SECONDS = 30.0
"""How old the newest row a sink wrote may be (``headwater_sink_freshness_seconds``) and still be fresh."""

STAGE_OUTCOMES = "headwater_stream_stage_outcomes_total"
BY_STAGE = {
    "dropped": "headwater_stream_events_dropped_total",
    "dead_lettered": "headwater_stream_events_dead_lettered_total",
    "timeouts": "headwater_stream_stage_timeouts_total",
    "retries": "headwater_stream_stage_retries_total",
}
BY_SINK = {
    "rows_written": "headwater_sink_rows_written_total",
    "rows_rejected": "headwater_sink_rows_rejected_total",
    "retries": "headwater_sink_retries_total",
}
FRESHNESS = "headwater_sink_freshness_seconds"
END_TO_END = "headwater_sink_end_to_end_seconds"


@dataclass(frozen=True)
class WorkerMetrics:
    """One scrape: ``stages[stage][counter]`` (outcomes ``ok``, ``drop``, ``deadletter`` and the
    ``BY_STAGE`` counters) and ``sinks[sink][counter]`` (``BY_SINK``); gauges where the worker has them."""

    at: float
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    sinks: dict[str, dict[str, float]] = field(default_factory=dict)
    freshness: dict[str, float] = field(default_factory=dict)  # sink → seconds; absent: the worker has no such gauge
    end_to_end: dict[str, float] = field(default_factory=dict)  # sink → seconds (a gauge, or a summary's mean)


def parse(text: str, at: float) -> WorkerMetrics:
    """A Prometheus text page → ``WorkerMetrics`` (unknown metrics are ignored)."""
    stages: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    sinks: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    freshness: dict[str, float] = {}
    e2e_sum: dict[str, float] = {}
    e2e_count: dict[str, float] = {}
    e2e_gauge: dict[str, float] = {}
    stage_names = {v: k for k, v in BY_STAGE.items()}
    sink_names = {v: k for k, v in BY_SINK.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == STAGE_OUTCOMES:
                stages[labels.get("stage", "")][labels.get("outcome", "")] += value
            elif name in stage_names:
                stages[labels.get("stage", "")][stage_names[name]] += value
            elif name in sink_names:
                sinks[labels.get("sink", "")][sink_names[name]] += value
            elif name == FRESHNESS:
                freshness[labels.get("sink", "")] = value
            elif name == END_TO_END:
                e2e_gauge[labels.get("sink", "")] = value
            elif name == END_TO_END + "_sum":
                e2e_sum[labels.get("sink", "")] = value
            elif name == END_TO_END + "_count":
                e2e_count[labels.get("sink", "")] = value
    end_to_end = dict(e2e_gauge)
    end_to_end.update({s: e2e_sum[s] / n for s, n in e2e_count.items() if n > 0 and s in e2e_sum})
    return WorkerMetrics(at, {s: dict(c) for s, c in stages.items()}, {s: dict(c) for s, c in sinks.items()},
                         freshness, end_to_end)


def scrape(url: str, at: float, timeout: float = 2.0) -> WorkerMetrics:
    """``GET url`` (the worker's ``/metrics``), parsed; raises ``httpx.HTTPError`` when it does not answer."""
    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return parse(response.text, at)


def rates(before: WorkerMetrics | None, after: WorkerMetrics) -> dict[str, dict[str, float | None]]:
    """Per stage, each counter's increase per second from ``before`` to ``after`` (None: unknown)."""
    span = after.at - before.at if before is not None else 0.0
    found: dict[str, dict[str, float | None]] = {}
    for stage, counters in after.stages.items():
        earlier = before.stages.get(stage, {}) if before is not None else {}
        found[stage] = {name: _rate(earlier.get(name, 0.0), value, span) for name, value in counters.items()}
    return found


def sink_rates(before: WorkerMetrics | None, after: WorkerMetrics) -> dict[str, dict[str, float | None]]:
    """Per sink, each counter's increase per second (None: unknown)."""
    span = after.at - before.at if before is not None else 0.0
    found: dict[str, dict[str, float | None]] = {}
    for sink, counters in after.sinks.items():
        earlier = before.sinks.get(sink, {}) if before is not None else {}
        found[sink] = {name: _rate(earlier.get(name, 0.0), value, span) for name, value in counters.items()}
    return found


def _rate(before: float, after: float, span: float) -> float | None:
    if span <= 0 or after < before:  # no interval yet, or the worker restarted (its counters began again)
        return None
    return (after - before) / span
