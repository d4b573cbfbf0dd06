"""The worker's Prometheus metrics, all named here (``headwater_stream_*``, ``headwater_sink_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STAGE_OUTCOMES = Counter(
    "headwater_stream_stage_outcomes", "Events leaving a stage, by stage and outcome.", ["stage", "outcome"]
)
EVENTS_DROPPED = Counter("headwater_stream_events_dropped", "Events dropped, by stage and reason.", ["stage", "reason"])
EVENTS_DEAD_LETTERED = Counter("headwater_stream_events_dead_lettered", "Events sent to the DLQ, by stage.", ["stage"])
STAGE_TIMEOUTS = Counter("headwater_stream_stage_timeouts", "Events a stage did not finish in time.", ["stage"])
WARNINGS_EMITTED = Counter("headwater_stream_warnings_emitted", "Ingestion warnings sent (after the hourly limit).")
EVENTS_EMITTED = Counter("headwater_stream_events_emitted", "Processed events acknowledged on the output topic.")
SINK_ROWS = Counter("headwater_sink_rows_written", "Rows a sink flushed durably.", ["sink"])
SINK_RETRIES = Counter("headwater_sink_retries", "Sink batches retried after a transient error.", ["sink"])
SINK_FLUSH_SECONDS = Histogram("headwater_sink_flush_seconds", "Time to flush one sink batch.", ["sink"])
