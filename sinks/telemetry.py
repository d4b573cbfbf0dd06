"""Every sink's Prometheus metrics (``headwater_sink_*``), labelled by the sink's name."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
