"""The consumer groups a topology runs, and the topics each reads: what ``headwater lag`` and the
worker's lag metrics (``streams.lag_metrics``) watch.

The worker's Faust app reads the pipeline's sources and every sink's source in one group (the
``app_id``); each plugin agent reads in ``<app_id>-agent_<name>``; each window aggregates in
``<app_id>-window_<name>`` (its repartition topic) and, unless the pipeline re-keys it, re-keys
its source in ``<app_id>-window_<name>-rekey``.
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.runtime.topology.model import Topology


@dataclass(frozen=True)
class Reader:
    """One reader of the topology: what it is (``role``), its consumer group and the topics it reads there."""

    role: str  # pipeline, sink:<name>, agent:<name>, window:<name>, window:<name>:rekey, or group:<name>
    group: str
    topics: tuple[str, ...]


def readers(topology: Topology) -> list[Reader]:
    """Every reader the topology declares, the pipeline first."""
    app = topology.app_id
    found = [Reader("pipeline", app, tuple(topology.pipeline.sources))]
    found += [Reader(f"sink:{sink.name}", app, (sink.source,)) for sink in topology.sinks]
    found += [Reader(f"agent:{agent.name}", f"{app}-agent_{agent.name}", (agent.source,)) for agent in topology.agents]
    for window in topology.windows:
        found.append(Reader(f"window:{window.name}", f"{app}-window_{window.name}", (window.repartition(app),)))
        if not topology.rekeyed_by_pipeline(window):
            found.append(Reader(f"window:{window.name}:rekey", f"{app}-window_{window.name}-rekey",
                                (window.source,)))
    return found
