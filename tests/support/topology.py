"""Isolated topologies: the default one with every topic and the app id prefixed.

Each test (and each bench workload) gets topics and a consumer group of its own, so it sees
no other test's events. ``isolated_topology`` renames by walking the document: a value under a
topic-naming key (``TOPIC_KEYS``) that names a declared topic is prefixed wherever it sits
(``capture``, ``pipeline`` and its ``persons``, ``sinks[].source``, ``agents[].source``), so new sections keep
working; ``load_topology`` then proves that every reference still names a declared topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from headwater.migrate import migrate_kafka
from headwater.runtime.topology import Topology, load_topology
from tests.support import DEFAULT_TOPOLOGY

TOPIC_KEYS = frozenset({"topic", "overflow_topic", "historical_topic", "source", "sources", "output", "dead_letter",
                        "warnings", "persons", "distinct_ids", "overrides", "groups", "late_topic"})


def isolated_topology(prefix: str, **overrides: Any) -> dict[str, Any]:
    """The default topology with every topic and the app id prefixed, as a YAML-ready dict."""
    doc: dict[str, Any] = load_topology(DEFAULT_TOPOLOGY).model_dump(mode="json")
    topics = set(doc["topics"])

    def rename(value: Any) -> Any:
        if isinstance(value, str) and value in topics:
            return prefix + value
        if isinstance(value, list):
            return [rename(v) for v in value]
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: rename(v) if k in TOPIC_KEYS and not isinstance(v, dict) else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    doc = walk(doc)
    doc["app_id"] = prefix + doc["app_id"]
    doc["topics"] = {prefix + name: spec for name, spec in doc["topics"].items()}
    doc.update(overrides)
    return doc


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass(frozen=True)
class Pipeline:
    """An isolated topology: its file and its model (topics created by ``isolated_pipeline``)."""

    path: Path
    topology: Topology

    @property
    def group(self) -> str:
        """The worker's Kafka consumer group: Faust uses the app id."""
        return self.topology.app_id

    def partitions(self, topic: str) -> int:
        return self.topology.topics[topic].partitions

    def pipeline_sources(self) -> dict[str, int]:
        """The topics the pipeline agent reads, with their partitions."""
        return {t: self.partitions(t) for t in self.topology.pipeline.sources}

    def sink_sources(self) -> dict[str, int]:
        """The topics the sink agents read, with their partitions."""
        return {s.source: self.partitions(s.source) for s in self.topology.sinks}

    def worker_reads(self) -> dict[str, int]:
        """Every topic the worker's group reads: the pipeline's sources first (its output feeds the rest)."""
        agents = {a.source: self.partitions(a.source) for a in self.topology.agents}
        return {**self.pipeline_sources(), **self.sink_sources(), **agents}


def isolated_pipeline(kafka: str, path: Path, doc: dict[str, Any] | None = None, *,
                      load: Callable[[Path], Topology] = load_topology) -> Pipeline:
    """Write ``doc`` (default: the default topology under a fresh prefix) to ``path``, load it
    with ``load`` and create its topics in ``kafka``."""
    write_yaml(path, doc if doc is not None else isolated_topology(fresh_prefix()))
    pipeline = Pipeline(path, load(path))
    migrate_kafka(kafka, pipeline.topology, lambda _: None)
    return pipeline


def fresh_prefix(letter: str = "t") -> str:
    """``t1a2b3c4d_``: a prefix no other run uses."""
    return f"{letter}{uuid.uuid4().hex[:8]}_"
