"""The environment layer of validation: is the broker there, with the topics as declared?

Also what ``headwater migrate`` reconciles: the topic configs Headwater owns (``topic_config``:
retention and cleanup policy), compared with what the broker holds (``config_drift``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # (the package does not re-export them for mypy)
from confluent_kafka.admin._resource import ResourceType

from headwater.runtime.topology.graph import Loc
from headwater.runtime.topology.model import TopicSpec, Topology

COMPACTED_SEGMENT_MS = 3_600_000


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """The broker configs a topic's spec decides (and ``migrate`` keeps the broker at)."""
    config = {"cleanup.policy": "compact" if spec.compacted else "delete"}
    config["retention.ms"] = "-1" if spec.retention_hours is None else str(int(spec.retention_hours * 3_600_000))
    if spec.compacted:  # compaction only cleans closed segments: close one an hour, not once a GB or a week
        config["segment.ms"] = str(COMPACTED_SEGMENT_MS)
    return config


@dataclass(frozen=True)
class Drift:
    """A topic config the broker holds otherwise than the topology says."""

    topic: str
    key: str
    actual: str | None
    wanted: str


def config_drift(admin: AdminClient, topology: Topology, topics: list[str], timeout: float = 10.0,
                 also: Mapping[str, Mapping[str, str]] | None = None) -> list[Drift]:
    """For the existing ``topics``, each owned config whose broker value differs from the topology's
    (and from ``also``: more configs by topic, such as ``min.insync.replicas`` of its replicas)."""
    if not topics:
        return []
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in topics]
    drift: list[Drift] = []
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        entries = future.result()
        wanted_configs = {**topic_config(topology.kafka_topics()[resource.name]), **(also or {}).get(resource.name, {})}
        for key, wanted in wanted_configs.items():
            entry = entries.get(key)
            actual = entry.value if entry is not None else None
            if actual != wanted:
                drift.append(Drift(resource.name, key, actual, wanted))
    return drift


def environment_problems(topology: Topology, bootstrap: str, timeout: float = 10.0) -> list[tuple[Loc, str]]:
    """Problems with the running cluster, located at the topic they concern."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        return [(("topics",), f"Kafka at {bootstrap} does not answer ({exc}); start it or use --offline")]
    problems: list[tuple[Loc, str]] = []
    for name, spec in topology.topics.items():
        info = existing.get(name)
        if info is None or info.error is not None:
            problems.append((("topics", name), f"topic {name!r} does not exist: run `headwater migrate`"))
        elif len(info.partitions) != spec.partitions:
            problems.append((("topics", name, "partitions"),
                             f"topic {name!r} has {len(info.partitions)} partitions, the topology declares "
                             f"{spec.partitions}"))
    present = [name for name in topology.topics if name in existing and existing[name].error is None]
    try:
        drift = config_drift(admin, topology, present, timeout)
    except KafkaException as exc:
        return [*problems, (("topics",), f"cannot read the topics' configs from Kafka: {exc}")]
    for d in drift:
        problems.append((("topics", d.topic), f"topic {d.topic!r} has {d.key}={d.actual}, the topology wants "
                                              f"{d.wanted}: run `headwater migrate`"))
    return problems
