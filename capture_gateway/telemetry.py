"""The gateway's Prometheus metrics, all named here (``headwater_capture_*``).

The per-request metrics are plain numbers the event loop adds to, exported by one collector
registered with ``prometheus_client`` (so ``/metrics`` serves them with everything else).
``prometheus_client``'s own metrics take a lock on every increment, which cost the capture
path more than some of its rules; here every update happens on the event loop's thread.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class LoopCounter:
    """A counter, optionally by one label, updated from the event loop only."""

    def __init__(self, name: str, documentation: str, label: str | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.values: dict[str, float] = {} if label else {"": 0.0}

    def inc(self, amount: float = 1.0, value: str = "") -> None:
        self.values[value] = self.values.get(value, 0.0) + amount

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label] if self.label else None)
        for value, total in self.values.items():
            family.add_metric([value] if self.label else [], total)
        return family


class LoopHistogram:
    """A histogram updated from the event loop only."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = list(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def collect(self) -> Metric:
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        return HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.sum)


REQUESTS = LoopCounter("headwater_capture_requests", "Capture requests answered, by status code.", "status")
EVENTS_RECEIVED = LoopCounter("headwater_capture_events_received", "Events decoded from capture requests.")
EVENTS_INGESTED = LoopCounter("headwater_capture_events_ingested", "Events acknowledged by Kafka.")
EVENTS_DROPPED = LoopCounter("headwater_capture_events_dropped", "Events not written, by reason.", "reason")
EVENTS_OVERFLOWED = LoopCounter("headwater_capture_events_overflowed", "Events routed to the overflow topic.")
REQUEST_SECONDS = LoopHistogram(
    "headwater_capture_request_seconds", "Time from request to answer.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PAYLOAD_BYTES = LoopHistogram(
    "headwater_capture_payload_bytes", "Request body size as received.",
    buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 20971520),
)
FLUSH_MESSAGES = LoopHistogram(
    "headwater_capture_flush_messages", "Kafka messages per producer flush (the requests of one event-loop turn).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
FLUSH_REQUESTS = LoopHistogram(
    "headwater_capture_flush_requests", "Capture requests whose events went out in one producer flush.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PRODUCER_QUEUE = Gauge("headwater_capture_producer_queue", "Messages waiting in the Kafka producer.")

_LOOP_METRICS: tuple[LoopCounter | LoopHistogram, ...] = (
    REQUESTS, EVENTS_RECEIVED, EVENTS_INGESTED, EVENTS_DROPPED, EVENTS_OVERFLOWED,
    REQUEST_SECONDS, PAYLOAD_BYTES, FLUSH_MESSAGES, FLUSH_REQUESTS,
)


class _LoopMetrics(Collector):
    def collect(self) -> Iterator[Metric]:
        for metric in _LOOP_METRICS:
            yield metric.collect()


REGISTRY.register(_LoopMetrics())


def requests_answered(status: int) -> None:
    REQUESTS.inc(1, str(status))
