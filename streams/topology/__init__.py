"""``topology.yaml``: the user's declaration of topics, stages and sinks.

Loaded strictly (unknown keys are errors), validated in layers before anything connects
(``load``), drawn and described (``graph``), checked against a running cluster
(``environment``), and documented from its models (``docs``).
"""

from streams.topology.load import load_topology
from streams.topology.model import (
    BatchSpec,
    CaptureSpec,
    ClickHouseSinkSpec,
    PipelineSpec,
    Policy,
    StageSpec,
    TopicSpec,
    Topology,
)

__all__ = [
    "BatchSpec",
    "CaptureSpec",
    "ClickHouseSinkSpec",
    "PipelineSpec",
    "Policy",
    "StageSpec",
    "TopicSpec",
    "Topology",
    "load_topology",
]
