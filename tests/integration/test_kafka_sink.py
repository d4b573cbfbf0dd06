"""The kafka sink end to end: the real posthog SDK → gateway → worker → a kafka sink re-publishing the
pipeline's processed events that its filter takes → the destination topic, read back and decoded."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import load_topology
from schemas.serializer import decode_envelope
from streams.components import component_problems
from tests.support.clickhouse import wait_for_count
from tests.support.kafka import lag, messages
from tests.support.processes import StartGateway, StartWorker
from tests.support.topology import fresh_prefix, isolated_pipeline, isolated_topology
from tests.support.waiting import wait_until

PARTITIONS = 2


def _exporting(prefix: str, fmt: str) -> dict[str, Any]:
    doc = isolated_topology(prefix)
    exports = f"{prefix}exports"
    doc["topics"][exports] = {"partitions": PARTITIONS, "compacted": True, "retention_hours": None}
    doc["sinks"].append({
        "name": "pro_purchases", "type": "kafka", "source": doc["pipeline"]["output"],
        "batch": {"max_events": 500, "max_seconds": 0.2},
        "config": {"topic": exports, "format": fmt,
                   "filter": {"events": ["purchase"], "properties": [{"key": "plan", "op": "eq", "value": "pro"}]}},
    })
    return doc


def _decode(fmt: str, value: bytes) -> dict[str, Any]:
    if fmt == "avro":
        subject, records = decode_envelope(value)
        assert (subject, len(records)) == ("processed_envelope", 1)
        return records[0]
    record: dict[str, Any] = orjson.loads(value)
    return record


@pytest.mark.parametrize("fmt", ["json", "avro"])
async def test_the_destination_holds_exactly_the_filtered_events(
        stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
        tmp_path: Path, fmt: str) -> None:
    doc = _exporting(fresh_prefix("k"), fmt)
    # `headwater migrate` (migrate_kafka) creates the sink's destination with the declared topics
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", doc,
                                 load=lambda path: load_topology(path, [component_problems]))
    exports = doc["sinks"][-1]["config"]["topic"]
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    client = Posthog(project.api_token, host=gateway.url, flush_at=40, max_retries=0)
    wanted: set[str] = set()
    sent = 0
    try:
        for i in range(150):
            event = ("purchase", "$pageview", "signed_up")[i % 3]
            plan = "pro" if i % 2 else "free"
            event_uuid = str(uuid.uuid4())
            client.capture(event, distinct_id=f"user-{i % 9}", properties={"plan": plan, "i": i}, uuid=event_uuid)
            sent += 1
            if event == "purchase" and plan == "pro":
                wanted.add(event_uuid)
    finally:
        client.shutdown()
    assert len(wanted) == 25

    def published() -> dict[bytes | None, dict[str, Any]]:
        """The topic as a deduplicating consumer (or compaction) sees it: the last value per key."""
        return {m.key(): _decode(fmt, m.value() or b"") for m in messages(stack.kafka, exports, PARTITIONS, 30)}

    await wait_for_count(stack, f"SELECT count() FROM events FINAL WHERE team_id = {project.id}", sent,
                         logs=[worker.log])
    wait_until(lambda: wanted <= {r["uuid"] for r in published().values()}, 90,
               lambda: f"{len(wanted - {r['uuid'] for r in published().values()})} filtered events not published",
               interval=0.5, logs=[worker.log])
    output = doc["pipeline"]["output"]
    wait_until(lambda: lag(stack.kafka, pipeline.group, {output: pipeline.partitions(output)}) == 0, 60,
               "the worker did not commit the pipeline's output", interval=0.5, logs=[worker.log])

    held = published()
    assert {r["uuid"] for r in held.values()} == wanted  # nothing the filter leaves out
    assert all(key == record["uuid"].encode() for key, record in held.items())
    assert {(r["event"], orjson.loads(r["properties"])["plan"], r["team_id"]) for r in held.values()} == \
        {("purchase", "pro", project.id)}
