"""The worker's Prometheus metrics, all named here (``headwater_stream_*``, ``headwater_plugin_*``,
``headwater_window_*``).

Sink metrics are ``sinks.telemetry``'s. Labels are low-cardinality: stage names, outcomes and
reasons from the code, never event data.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STAGE_OUTCOMES = Counter(
    "headwater_stream_stage_outcomes", "Events leaving a stage, by stage and outcome.", ["stage", "outcome"]
)
EVENTS_DROPPED = Counter("headwater_stream_events_dropped", "Events dropped, by stage and reason.", ["stage", "reason"])
EVENTS_DEAD_LETTERED = Counter("headwater_stream_events_dead_lettered", "Events sent to the DLQ, by stage.", ["stage"])
STAGE_TIMEOUTS = Counter(
    "headwater_stream_stage_timeouts", "Stage calls (a batch, or part of one being bisected) not done in time.",
    ["stage"],
)
STAGE_RETRIES = Counter(
    "headwater_stream_stage_retries", "Stage calls retried (a Retry outcome, an outage, or on_error: retry).", ["stage"]
)
WARNINGS_EMITTED = Counter("headwater_stream_warnings_emitted", "Ingestion warnings sent (after the hourly limit).")
EVENTS_PROCESSED = Counter("headwater_stream_events_processed", "Processed events acknowledged on the output topic.")
PLUGIN_EVENTS = Counter("headwater_plugin_events", "Counters plugins bump, by stage and name.", ["stage", "name"])
HISTORICAL_WAIT_SECONDS = Counter(
    "headwater_stream_historical_wait_seconds", "Time historical batches waited for live traffic (streams.priority)."
)
PERSON_LOOKUPS = Counter(
    "headwater_stream_person_lookups", "Distinct ids the persons stage looked up, by where they were found.", ["source"]
)
PERSON_EVENTS_REPLAYED = Counter(
    "headwater_stream_person_events_replayed",
    "Person events read again after a crash that the store had applied: left out, not applied twice.")
PERSON_WRITE_CONFLICTS = Counter(
    "headwater_stream_person_write_conflicts", "Person writes that lost to another writer and were applied again."
)
PERSON_CACHE_WRITE_FAILURES = Counter(
    "headwater_stream_person_cache_write_failures", "Person cache refreshes Redis refused (next read: Postgres)."
)

WINDOW_LATE_EVENTS = Counter(
    "headwater_window_late_events", "Events a window did not count: every window holding them had closed.",
    ["window"],
)
WINDOWS_EMITTED = Counter("headwater_window_windows_emitted", "Windows that closed and were sent.", ["window"])
WINDOW_RECORDS_REPLAYED = Counter(
    "headwater_window_records_replayed", "Re-keyed records a window had applied already (sent again after a crash).",
    ["window"],
)

CANARY_SENT = Counter("headwater_canary_sent", "Canary heartbeats the gateway took (streams.canary).")
CANARY_FAILED = Counter("headwater_canary_failed", "Canary heartbeats the gateway did not take (not 200).")
CANARY_LOST = Counter("headwater_canary_lost", "Canary heartbeats not in ClickHouse 5 minutes after they were sent.")
CANARY_SECONDS = Histogram(
    "headwater_canary_seconds", "From a canary heartbeat's send to finding it in ClickHouse.",
    buckets=(0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300),
)
CANARY_FRESHNESS = Gauge(
    "headwater_canary_freshness_seconds", "The last canary heartbeat's age when it was found in ClickHouse."
)

EVENTS_RECEIVED = Counter(
    "headwater_stream_events_received", "Events the pipeline read from its sources (decoded from raw envelopes).")
STAGE_SECONDS = Histogram(
    "headwater_stream_stage_seconds", "Time one stage took for one batch (its retries and splitting included).",
    ["stage"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEAD_LETTERS = Counter(
    "headwater_stream_dead_letters",
    "Dead letters Kafka acknowledged, by stage (a pipeline stage, decode, sink:<name>, agent_<name>) and reason.",
    ["stage", "reason"],
)

# Consumer lag, measured every few seconds by streams.lag_metrics for the partitions this worker has.
_PARTITION = ["group", "topic", "partition"]
CONSUMER_LAG_MESSAGES = Gauge(
    "headwater_consumer_lag_messages", "Messages after the group's committed offset (log end - committed).", _PARTITION)
CONSUMER_LAG_SECONDS = Gauge(
    "headwater_consumer_lag_seconds",
    "Age of the oldest message the group has not committed (its Kafka timestamp); 0 when caught up.", _PARTITION)
CONSUMER_COMMITTED_OFFSET = Gauge(
    "headwater_consumer_committed_offset", "The group's committed offset (STALL: it stops moving while lag > 0).",
    _PARTITION)
CONSUMER_ASSIGNED_PARTITIONS = Gauge(
    "headwater_consumer_assigned_partitions", "Partitions this worker's consumer of the group has assigned.", ["group"])
CONSUMER_PARTITIONS = Gauge(
    "headwater_consumer_partitions",
    "Partitions of the topics the group reads (summed assignments below this: partitions no worker reads).", ["group"])
CONSUMER_LAG_PROBE_FAILURES = Counter(
    "headwater_consumer_lag_probe_failures", "Lag measurements that failed (Kafka did not answer in time).")
