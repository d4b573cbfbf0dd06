"""Re-keying inside the pipeline, for a window over the pipeline's own output.

A window whose ``source`` is ``pipeline.output`` needs no re-key step of its own: the pipeline
has the batch's processed events at hand, decoded, when it sends them. It re-keys them there
(``WindowTap``) and sends the records to the window's repartition topic in the same batch, so
they are acknowledged before the batch's offsets are committed, like the processed envelopes.
This saves a consumer, a fetch and an Avro decode of every processed event (Kafka Streams does
the same: a ``groupBy`` is computed in the topology that produced the records).

A record's source is ``<topic>:<partition>`` of the envelope the event came in, and its position
that envelope's offset and the event's index in it: the batch's records are sorted by it, so the
aggregator sees each source's positions grow, and a replayed batch's records are skipped there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from headwater.runtime.topology import Topology, WindowSpec
from streams.event import Position
from streams.windows.runner import Out, Rekeyed, Repartitioner


class WindowTap:
    """One window's re-key, run on each pipeline batch's processed events."""

    def __init__(self, spec: WindowSpec, app_id: str, partitions: int) -> None:
        self.repartitioner = Repartitioner(spec, app_id, partitions)

    def messages(self, events: Iterable[tuple[Position, Mapping[str, Any]]]) -> list[Out]:
        """The repartition messages of a batch's processed events, each source's records in order."""
        by_partition: dict[int, list[Rekeyed]] = {}
        for position, record in sorted(events, key=lambda e: (e[0].topic, e[0].partition, e[0].offset, e[0].index)):
            self.repartitioner.add(by_partition, record, f"{position.topic}:{position.partition}", position.offset,
                                   position.index)
        return self.repartitioner.messages(by_partition)


def window_taps(topology: Topology) -> list[WindowTap]:
    """A tap for each window the pipeline re-keys."""
    topics = topology.kafka_topics()
    return [WindowTap(w, topology.app_id, topics[w.repartition(topology.app_id)].partitions)
            for w in topology.windows if topology.rekeyed_by_pipeline(w)]
