"""The ``kafka`` sink: re-publishes a topic's records (filtered events, or window results) to a Kafka topic.

One message per record, as JSON or as a one-record Avro envelope in the source's own schema,
keyed so that a compacted topic or a deduplicating consumer keeps one copy of each record
(``messages``). Delivery is at least once (``sink``); the destination is a topic declared in the
topology (``headwater migrate`` creates it) or one on another cluster (``bootstrap``).
"""
