"""Assembling the ops page: the collector over a topology's readers, the laid-out graph, the app."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.types import ASGIApp

from headwater.ops.lag import LagProbe, Sampler
from headwater.ops.page.app import create_app
from headwater.ops.page.collector import Collector
from headwater.ops.page.dlq import DeadLetterTally
from headwater.ops.page.graph import layout
from headwater.runtime.topology import Topology
from headwater.runtime.topology.readers import readers


def build(topology: Topology, bootstrap: str, metrics_url: str, *, interval: float = 2.0, window: float = 10.0,
          published: Mapping[str, Sequence[str]] | None = None) -> ASGIApp:
    """The ops page of ``topology`` on the Kafka at ``bootstrap``, with the worker's metrics at ``metrics_url``;
    it starts sampling when the server starts."""
    sampler = Sampler(LagProbe(bootstrap), readers(topology), window)
    collector = Collector(sampler, [s.name for s in topology.pipeline.stages], [s.name for s in topology.sinks],
                          metrics_url, DeadLetterTally(bootstrap, topology.pipeline.dead_letter),
                          interval=interval, window=window)
    return create_app(collector, {"app_id": topology.app_id, "graph": layout(topology, published)})
