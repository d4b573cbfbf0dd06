"""Everything that writes out of the pipeline: ClickHouse now; webhook, files and Kafka exports next.

One contract for all sinks (``sinks.base.Sink``): take a batch, flush it durably, and say
whether a failure is worth retrying.
"""
