"""The Quix Streams consumer of the worker bench: the pipeline's sources → the stages → ClickHouse rows.

A Quix ``Application`` on the topology's pipeline sources (its consumer group: the topology's
``app_id``), one ``StreamingDataFrame`` per source topic: a ``Deserializer`` decodes the raw
envelope, ``apply`` runs one message's events through the stages and builds their rows
(``bench.worker.work.ConsumerWork``), and a sink inserts them into the topology's ``events``
table in batches: when ``MAX_ROWS`` are pending, and at each checkpoint (every
``FLUSH_SECONDS``, Quix's ``commit_interval``), before Quix commits the offsets.

Run by ``bench.worker.consumers`` (pinned to one core) as
``python -m bench.worker.quix_app --topology T --stats S --state-dir D [--stage-calls
message|event]`` with the stack's ``HEADWATER_*`` variables; it runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.models import HeadersTuples
from quixstreams.models.serializers import Deserializer, SerializationContext
from quixstreams.sinks import BaseSink

from bench.worker.work import FLUSH_SECONDS, RAW, STAGE_CALLS, STAGE_CALLS_HELP, ConsumerWork
from headwater.runtime.settings import Settings
from headwater.runtime.topology import load_topology
from headwater.stack.endpoints import resolve_endpoints
from schemas.events import RawEvent


class EnvelopeDeserializer(Deserializer):  # type: ignore[misc]
    """A raw envelope → its events (one value: Quix does not split it into a row per event)."""

    def __init__(self) -> None:  # the base's takes untyped *args and does nothing
        pass

    def __call__(self, value: bytes, ctx: SerializationContext) -> list[RawEvent]:
        return RAW.decode(value)["events"]


class ClickHouseRows(BaseSink):  # type: ignore[misc]
    """Collects the rows ``apply`` built; inserts them when enough are pending and at every checkpoint."""

    def __init__(self, work: ConsumerWork) -> None:
        super().__init__()
        self._work = work

    def add(self, value: Any, key: Any, timestamp: int, headers: HeadersTuples, topic: str, partition: int,
            offset: int) -> None:
        self._work.add(value)
        if self._work.due:
            self._work.flush()

    def flush(self) -> None:
        self._work.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", type=Path, required=True)
    parser.add_argument("--stats", type=Path, required=True, help="JSON file rewritten after every insert")
    parser.add_argument("--state-dir", type=Path, required=True, help="Quix's state directory (unused: no state)")
    parser.add_argument("--stage-calls", choices=STAGE_CALLS, default="event", help=STAGE_CALLS_HELP)
    args = parser.parse_args()
    settings = Settings()
    topology = load_topology(args.topology)
    endpoints = resolve_endpoints(settings)
    work = ConsumerWork(topology, endpoints, args.stats, settings.token_cache_seconds, args.stage_calls)
    app = Application(
        broker_address=endpoints.kafka,
        consumer_group=topology.app_id,
        auto_offset_reset="earliest",
        commit_interval=FLUSH_SECONDS,
        loglevel=logging.WARNING,
        auto_create_topics=False,
        use_changelog_topics=False,
        state_dir=args.state_dir,
    )
    sink = ClickHouseRows(work)
    for source in topology.pipeline.sources:
        topic = app.topic(source, value_deserializer=EnvelopeDeserializer(), key_deserializer="bytes")

        def rows(raws: list[RawEvent], source_topic: str = source) -> list[tuple[object, ...]]:
            return work.rows(raws, source_topic)

        app.dataframe(topic).apply(rows).sink(sink)
    try:
        app.run()
    finally:
        work.close()


if __name__ == "__main__":
    main()
