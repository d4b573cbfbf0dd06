"""The environment layer of validation: is the broker there, with the topics as declared?"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from headwater.runtime.topology.graph import Loc
from headwater.runtime.topology.model import Topology


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
    return problems
