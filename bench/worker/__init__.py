"""The worker half of ``make bench``: what the stream worker costs per event, beside two baselines.

One run, one backlog: the real gateway under the ``batch`` workload fills the capture topics
of a fresh isolated topology (at least 300,000 events, counted by decoding every envelope),
and three consumers take that backlog to rows in ClickHouse, one after another, each pinned
to the server core with ``taskset`` and writing its own table:

1. ``headwater worker`` (Faust: raw → stages → ``events_processed`` → its clickhouse sink);
2. a Quix Streams application (``quix_app``) and
3. a plain confluent-kafka loop (``plain_loop``), both doing the same per-event work with the
   same pieces: the raw envelope's decoder, the topology's stages (through one helper,
   ``stages.through_stages``), the ``events`` rows and the ClickHouse client (``work``).

For each: events/s from partition assignment to the last row queryable, CPU of its process per
event, peak RSS, and the ClickHouse owner's CPU per row; the worker's events per CPU-second set
against the gateway's (same run), the Quix app's and the plain loop's, with targets
(``report``). ``bench/run.py`` runs it by default; ``--worker`` (or ``python -m bench.worker``,
or ``bench/worker/run.py``) runs only this half. Modules: ``backlog``, ``consumers``,
``measure``, ``suite``, ``report``, ``procfs``, ``work``, ``stages``, ``quix_app``, ``plain_loop``.

After that throughput part comes ``persons`` (the worker with its persons stage vs without it, on a
backlog of its own: 90% known persons, 10% new, 20% of the events with ``$set``), then the live
parts (``parts``, ``parts_report``): ``scaling`` (the
backlog drained by one worker, then two in one consumer group), ``latency`` with its ``soak``
(the real PostHog SDK, ``sender`` processes paced by ``load``, through a gateway and a worker
on a topology of their own, ``live``; RSS and import progress sampled by ``sampling``) and
``historical`` (an import waiting beside live traffic).
"""
