"""The gateway's Prometheus metrics, all named here (``headwater_capture_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("headwater_capture_requests", "Capture requests answered, by status code.", ["status"])
EVENTS_RECEIVED = Counter("headwater_capture_events_received", "Events decoded from capture requests.")
EVENTS_INGESTED = Counter("headwater_capture_events_ingested", "Events acknowledged by Kafka.")
EVENTS_DROPPED = Counter("headwater_capture_events_dropped", "Events not written, by cause.", ["cause"])
REQUEST_SECONDS = Histogram(
    "headwater_capture_request_seconds", "Time from request to answer.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_OVERFLOWED = Counter("headwater_capture_events_overflowed", "Events routed to the overflow topic.")
PAYLOAD_BYTES = Histogram(
    "headwater_capture_payload_bytes", "Request body size as received.",
    buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 20971520),
)
PRODUCER_QUEUE = Gauge("headwater_capture_producer_queue", "Messages waiting in the Kafka producer.")
PRODUCE_FLUSH_MESSAGES = Histogram(
    "headwater_capture_flush_messages", "Kafka messages per producer flush (requests of one event-loop turn).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PRODUCE_FLUSH_REQUESTS = Histogram(
    "headwater_capture_flush_requests", "Capture requests whose events went out in one producer flush.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

_REQUESTS_BY_STATUS: dict[int, Counter] = {}


def requests_answered(status: int) -> None:
    """Count one answer; the labelled child is looked up once per status, not per request."""
    child = _REQUESTS_BY_STATUS.get(status)
    if child is None:
        child = _REQUESTS_BY_STATUS[status] = REQUESTS.labels(str(status))
    child.inc()
