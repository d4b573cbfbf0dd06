"""The topology as a layered graph for the ops page to draw: the gateway, the capture topics, the
pipeline's stages in order, its output and side topics, then the sinks, agents and windows that
read them (and the topics those write).

Each node gets a ``layer`` (its column: the longest path to it from the gateway) and a ``row``
(its place in that column); the page turns those into coordinates. The same edges as
``headwater topology graph`` draws, except that side outputs (dead letters, warnings, person
rows) leave from the last stage, so they sit in the output's column; any stage may send them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from headwater.runtime.topology import Topology


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # gateway, topic, stage, sink, agent, window
    label: str
    reader: str | None  # the role in the lag report whose status colours it (``headwater.runtime.topology.readers``)
    layer: int = 0
    row: int = 0


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""
    side: bool = False  # a side output or late events: drawn dashed


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []

    def node(self, id_: str, kind: str, label: str, reader: str | None = None) -> str:
        self.nodes.setdefault(id_, Node(id_, kind, label, reader))
        return id_

    def topic(self, name: str) -> str:
        return self.node(f"topic:{name}", "topic", name)

    def edge(self, source: str, target: str, label: str = "", side: bool = False) -> None:
        self.edges.append(Edge(source, target, label, side))


def layout(topology: Topology, published: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...], "layers": n}`` of ``topology``; ``published``: each sink's
    destination topics (``sinks.registry.published_topics``), drawn as sink → topic edges."""
    b = _Builder()
    pipeline, capture = topology.pipeline, topology.capture
    gateway = b.node("gateway", "gateway", "capture gateway")
    for name in dict.fromkeys((capture.topic, capture.overflow_topic, capture.historical_topic)):
        b.edge(gateway, b.topic(name))
    stages = [b.node(f"stage:{s.name}", "stage", s.name if not s.plugin else f"{s.name}: {s.plugin}", "pipeline")
              for s in pipeline.stages]
    for source in pipeline.sources:
        b.edge(b.topic(source), stages[0])
    for a, c in pairwise(stages):
        b.edge(a, c)
    b.edge(stages[-1], b.topic(pipeline.output))
    for label, topic in pipeline.side_outputs():
        b.edge(stages[-1], b.topic(topic), label, side=True)
    for sink in topology.sinks:
        node = b.node(f"sink:{sink.name}", "sink", f"{sink.name} ({sink.type})", f"sink:{sink.name}")
        b.edge(b.topic(sink.source), node)
        for topic in (published or {}).get(sink.name, ()):
            if topic in topology.topics:
                b.edge(node, b.topic(topic))
    for agent in topology.agents:
        node = b.node(f"agent:{agent.name}", "agent", f"agent {agent.name}", f"agent:{agent.name}")
        b.edge(b.topic(agent.source), node)
    for window in topology.windows:
        node = b.node(f"window:{window.name}", "window", f"window {window.name}", f"window:{window.name}")
        b.edge(b.topic(window.source), node)
        b.edge(node, b.topic(window.output))
        if window.late_topic is not None:
            b.edge(node, b.topic(window.late_topic), "late", side=True)
    layers = _layers(list(b.nodes), b.edges)
    rows: dict[int, int] = {}
    placed = []
    for found in b.nodes.values():
        layer = layers[found.id]
        placed.append(Node(found.id, found.kind, found.label, found.reader, layer, rows.get(layer, 0)))
        rows[layer] = rows.get(layer, 0) + 1
    return {"nodes": [asdict(n) for n in placed], "edges": [asdict(e) for e in b.edges],
            "layers": max(layers.values(), default=0) + 1}


def _layers(ids: list[str], edges: list[Edge]) -> dict[str, int]:
    """Each node's longest distance from a node nothing points to. A cycle (a sink publishing to a
    topic upstream of it) cannot push layers forever: at most one relaxation per node."""
    layer = dict.fromkeys(ids, 0)
    for _ in ids:
        moved = False
        for edge in edges:
            if layer[edge.target] < layer[edge.source] + 1:
                layer[edge.target] = layer[edge.source] + 1
                moved = True
        if not moved:
            break
    return layer
