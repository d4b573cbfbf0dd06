"""Every sink's Prometheus metrics (``headwater_sink_*``), labelled by the sink's name."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ROWS_WRITTEN = Counter("headwater_sink_rows_written", "Records a sink flushed durably.", ["sink"])
ROWS_REJECTED = Counter(
    "headwater_sink_rows_rejected", "Records a destination refused for good (dead-lettered).", ["sink"]
)
RETRIES = Counter("headwater_sink_retries", "Sink writes retried after a transient error.", ["sink"])
FLUSH_SECONDS = Histogram("headwater_sink_flush_seconds", "Time to flush one sink batch.", ["sink"])
FALLBACKS = Counter(
    "headwater_sink_fallbacks",
    "Batches a destination refused in the sink's fast format (ClickHouse: Avro), then written as rows.", ["sink"],
)
