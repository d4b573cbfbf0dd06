"""``topology.yaml``: the user's declaration of topics, stages, sinks, agents and windows.

Loaded strictly (unknown keys are errors) and validated in layers before anything connects
(``load``): fields, then the graph (``graph``), then the checks the caller adds. This package
knows no stage, sink or agent: the worker and the CLI pass ``streams.components`` checks in,
so the gateway loads a topology without importing any of them. ``environment`` checks the
running cluster; ``graph`` also draws and describes a topology.
"""

from headwater.runtime.topology.graph import Check, Loc
from headwater.runtime.topology.load import load_topology
from headwater.runtime.topology.model import (
    AgentSpec,
    AggregationSpec,
    BatchSpec,
    CaptureSpec,
    PersonTopics,
    PipelineSpec,
    Policy,
    SinkSpec,
    StageSpec,
    TopicSpec,
    Topology,
    WindowSpec,
)

__all__ = [
    "AgentSpec",
    "AggregationSpec",
    "BatchSpec",
    "CaptureSpec",
    "Check",
    "Loc",
    "PersonTopics",
    "PipelineSpec",
    "Policy",
    "SinkSpec",
    "StageSpec",
    "TopicSpec",
    "Topology",
    "WindowSpec",
    "load_topology",
]
