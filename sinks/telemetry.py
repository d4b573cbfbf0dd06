"""Every sink's Prometheus metrics (``headwater_sink_*``), labelled by the sink's name.

End-to-end latency and freshness are measured per flush from each source envelope's capture time
(``SourceEnvelope.captured_at``): a histogram weighted by the envelope's record count (one bucket
lookup per envelope, no decoding), and the age of the newest capture time written, computed when
``/metrics`` is scraped.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class RecordsHistogram(Collector):
    """A histogram by sink whose observations carry a weight (records): ``observe(sink, seconds, records)``
    counts ``records`` observations of ``seconds`` with one bucket lookup. Updated on the event loop only."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = ("sink",)
        self.bounds = list(buckets)
        self._series: dict[str, tuple[list[float], list[float]]] = {}  # sink → (counts per bucket + Inf, [sum])

    def init(self, sink: str) -> None:
        """Show the sink's series (all zero) before its first observation."""
        self._series.setdefault(sink, ([0.0] * (len(self.bounds) + 1), [0.0]))

    def observe(self, sink: str, seconds: float, records: int = 1) -> None:
        counts, total = self._series.get(sink) or self._series.setdefault(
            sink, ([0.0] * (len(self.bounds) + 1), [0.0]))
        counts[bisect_left(self.bounds, seconds)] += records
        total[0] += seconds * records

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for sink, (counts, total) in self._series.items():
            cumulative, buckets = 0.0, []
            for bound, count in zip([*map(floatToGoString, self.bounds), "+Inf"], counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric([sink], buckets, total[0])
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))


class AgeGauge(Collector):
    """Per sink, the age (now minus a timestamp kept by ``set``) when scraped; no series before the first ``set``."""

    def __init__(self, name: str, documentation: str, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = ("sink",)
        self._clock = clock
        self.newest: dict[str, float] = {}

    def set(self, sink: str, timestamp: float) -> None:
        """``timestamp`` (seconds since the epoch) is the newest one, unless a newer one was set."""
        if timestamp > self.newest.get(sink, 0.0):
            self.newest[sink] = timestamp

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))
        now = self._clock()
        for sink, newest in self.newest.items():
            family.add_metric([sink], max(0.0, now - newest))
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))


ROWS_WRITTEN = Counter("headwater_sink_rows_written", "Records a sink flushed durably.", ["sink"])
ROWS_REJECTED = Counter(
    "headwater_sink_rows_rejected", "Records a destination refused for good (dead-lettered).", ["sink"]
)
RETRIES = Counter("headwater_sink_retries", "Sink writes retried after a transient error.", ["sink"])
DUPLICATES = Counter(
    "headwater_sink_duplicates_skipped",
    "Events a sink left out because it had written them already (the topic held them twice).", ["sink"],
)
FLUSH_SECONDS = Histogram("headwater_sink_flush_seconds", "Time to flush one sink batch.", ["sink"])
BATCH_RECORDS = Histogram(
    "headwater_sink_batch_records", "Records in one sink batch (the envelopes' count headers, summed).", ["sink"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000, 25_000, 50_000),
)
END_TO_END_SECONDS = RecordsHistogram(
    "headwater_sink_end_to_end_seconds",
    "Time from capture (the gateway's Kafka write) to durably written by the sink, one observation per record.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 120, 300, 600, 1800, 3600),
)
FRESHNESS_SECONDS = AgeGauge(
    "headwater_sink_freshness_seconds", "Age of the newest event the sink has written (by capture time).")
REGISTRY.register(END_TO_END_SECONDS)
REGISTRY.register(FRESHNESS_SECONDS)
FALLBACKS = Counter(
    "headwater_sink_fallbacks",
    "Batches a destination refused in the sink's fast format (ClickHouse: Avro), then written as rows.", ["sink"],
)

WEBHOOK_REQUESTS = Counter(
    "headwater_webhook_requests",
    "Webhook requests by outcome: delivered, refused (400/422), too_large (413), failed (5xx, 429, timeouts, ...).",
    ["sink", "outcome"],
)
WEBHOOK_REQUEST_SECONDS = Histogram("headwater_webhook_request_seconds", "Time one webhook request took.", ["sink"])
WEBHOOK_PAUSED = Gauge("headwater_webhook_paused", "1 while a webhook destination is paused, else 0.", ["sink"])
WEBHOOK_PAUSED_ENVELOPES = Counter(
    "headwater_webhook_paused_envelopes",
    "Source envelopes dead-lettered (destination_paused) because their webhook destination was paused.", ["sink"],
)
