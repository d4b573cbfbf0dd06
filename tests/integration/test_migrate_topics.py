"""``migrate`` keeps the topic configs the topology owns; an online ``validate`` reports drift."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient

from headwater.migrate import migrate_kafka
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import load_topology
from headwater.runtime.topology.environment import config_drift, environment_problems
from tests.support.topology import fresh_prefix, isolated_pipeline, isolated_topology, write_yaml


def test_a_retention_change_is_reported_by_validate_and_applied_by_migrate(stack: Endpoints, tmp_path: Path) -> None:
    doc = isolated_topology(fresh_prefix())
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", doc)
    dlq = pipeline.topology.pipeline.dead_letter
    assert environment_problems(pipeline.topology, stack.kafka) == []

    doc["topics"][dlq]["retention_hours"] = 24
    changed = load_topology(write_yaml(tmp_path / "changed.yaml", doc))
    problems = environment_problems(changed, stack.kafka)
    assert problems == [(("topics", dlq), f"topic {dlq!r} has retention.ms=2592000000, the topology wants "
                                          "86400000: run `headwater migrate`")]

    said: list[str] = []
    migrate_kafka(stack.kafka, changed, said.append)
    assert f"kafka: topic {dlq}: retention.ms 2592000000 → 86400000" in said
    admin = AdminClient({"bootstrap.servers": stack.kafka})
    assert config_drift(admin, changed, list(changed.topics)) == []
    assert environment_problems(changed, stack.kafka) == []
    said.clear()
    migrate_kafka(stack.kafka, changed, said.append)  # again: nothing to change
    assert not [line for line in said if "→" in line]
