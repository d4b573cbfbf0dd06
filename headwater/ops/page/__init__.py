"""The live ops page (``headwater ops``, and part of ``headwater run``): a read-only web page at
http://127.0.0.1:8100/ drawing the topology with per-stage rates and errors, the lag table,
an hour of lag and throughput charts, the dead letters and sink freshness.

``collector`` samples everything in a background thread (the lag report of ``headwater.ops.lag``,
the worker's ``/metrics`` via ``metrics``, the dead-letter topic via ``dlq``) and keeps an hour
of it in ``history``; ``graph`` lays the topology out in layers; ``app`` serves the page, its own
static files and the JSON it polls. Nothing here writes to Kafka, Postgres or the worker.
"""
