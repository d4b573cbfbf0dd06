"""Plugins that raise, time out or drop follow their stage's policy; other keys keep flowing; nothing is lost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import load_topology
from tests.conftest import ROOT, isolated_topology, write_yaml
from tests.integration.conftest import Pipeline, StartGateway, StartWorker, select, stack_env, wait_for_count

PLUGINS = "tests.fixtures.plugins"


def _pipeline_with_plugins(path: Path, prefix: str, *, fail: bool) -> Pipeline:
    doc = isolated_topology(prefix)
    stages = doc["pipeline"]["stages"]
    plugin_stages: list[dict[str, Any]] = [
        {"name": "raiser", "type": "plugin", "plugin": f"{PLUGINS}:Raiser", "config": {"fail": fail},
         "on_error": "dead_letter"},
        {"name": "sleeper", "type": "plugin", "plugin": f"{PLUGINS}:Sleeper", "config": {"seconds": 30},
         "on_error": "drop", "timeout_seconds": 0.5},
        {"name": "blocking", "type": "plugin", "plugin": f"{PLUGINS}:BlockingSleeper", "config": {"seconds": 3},
         "on_error": "drop", "timeout_seconds": 0.5},
        {"name": "dropper", "type": "plugin", "plugin": f"{PLUGINS}:Dropper"},
    ]
    stages[-1:-1] = plugin_stages  # before prepare
    write_yaml(path, doc)
    return Pipeline(path, load_topology(path))


def _event(kind: str, distinct_id: str, **props: Any) -> dict[str, Any]:
    return {"event": kind, "distinct_id": distinct_id, "uuid": str(uuid.uuid4()), "properties": props}


def _metric(text: str, metric: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{metric}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {metric}{{{wanted}}} in the worker's metrics")


async def test_plugin_failures_follow_their_policy_and_nothing_is_lost(
    stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker, tmp_path: Path
) -> None:
    from headwater.migrate import migrate_kafka

    prefix = f"p{uuid.uuid4().hex[:8]}_"
    pipeline = _pipeline_with_plugins(tmp_path / "topology.yaml", prefix, fail=True)
    migrate_kafka(stack.kafka, pipeline.topology, lambda _: None)
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)

    boom = [_event("boom", "user-b", boom=True) for _ in range(3)]
    slow = [_event("slow", "user-s", slow=True) for _ in range(2)]
    dropped = [_event("dropped", "user-d", drop=True) for _ in range(2)]
    fine = [_event("fine", f"user-{i}", n=i) for i in range(40)]
    batch = [*boom, *slow, *dropped, *fine]
    response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps({"api_key": project.api_token,
                                                                          "batch": batch}))
    assert response.status_code == 200

    table = f"events FINAL WHERE team_id = {project.id}"
    assert await wait_for_count(stack, f"SELECT count() FROM {table}", len(fine)) == len(fine)
    landed = {r[0] for r in (await select(stack, f"SELECT toString(uuid) FROM {table}")).rows}
    assert landed == {e["uuid"] for e in fine}
    seen = await select(stack, f"SELECT count() FROM {table} AND JSONExtractBool(properties, 'seen_by_blocking')")
    assert seen.rows == [[len(fine)]]

    web_port = worker.env["HEADWATER_WORKER_WEB_PORT"]
    metrics = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=10).text
    assert _metric(metrics, "headwater_stream_events_dead_lettered_total", stage="raiser") == 3
    assert _metric(metrics, "headwater_stream_stage_timeouts_total", stage="sleeper") == 2
    assert _metric(metrics, "headwater_stream_events_dropped_total", stage="dropper", reason="dropped_by_plugin") == 2
    passed_blocking = len(fine) + len(dropped)  # the dropper comes after it
    assert _metric(metrics, "headwater_plugin_events_total", stage="blocking", name="blocking_seen") == passed_blocking

    warnings = await wait_for_count(
        stack, f"SELECT count() FROM ingestion_warnings FINAL WHERE team_id = {project.id} "
               f"AND type = 'event_dropped_by_transformation'", 1)
    assert warnings == 1  # two drops, same key: one warning an hour

    # After the fix (the raiser no longer fails), the dead-lettered events replay and land.
    worker.stop()
    fixed = _pipeline_with_plugins(tmp_path / "fixed.yaml", prefix, fail=False)
    start_worker(fixed)
    env = {**os.environ, **stack_env(stack), "HEADWATER_TOPOLOGY": str(fixed.path)}
    listed = subprocess.run([sys.executable, "-m", "headwater.cli", "dlq", "list", "--json"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    letters = json.loads(listed.stdout)
    assert sorted(letter["uuid"] for letter in letters) == sorted(e["uuid"] for e in boom)
    assert {(letter["stage"], letter["reason"]) for letter in letters} == {("raiser", "error")}
    assert all("RuntimeError: boom" in letter["error"] for letter in letters)
    subprocess.run([sys.executable, "-m", "headwater.cli", "dlq", "replay", "--filter", "stage=raiser"], env=env,
                   cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    total = len(fine) + len(boom)
    assert await wait_for_count(stack, f"SELECT count() FROM {table}", total) == total
    await asyncio.sleep(0)


async def test_a_plugin_agent_reads_its_own_topic(stack: Endpoints, project: Project, start_gateway: StartGateway,
                                                  start_worker: StartWorker,
                                                  tmp_path: Path) -> None:
    from headwater.migrate import migrate_kafka

    doc = isolated_topology(f"a{uuid.uuid4().hex[:8]}_")
    doc["agents"] = [{"name": "tap", "source": doc["pipeline"]["output"], "handler": "tests.fixtures.agents:tap"}]
    path = write_yaml(tmp_path / "topology.yaml", doc)
    pipeline = Pipeline(path, load_topology(path))
    migrate_kafka(stack.kafka, pipeline.topology, lambda _: None)
    gateway = start_gateway(pipeline)
    tap = tmp_path / "tap.txt"
    start_worker(pipeline, HEADWATER_TEST_TAP_FILE=str(tap))
    events = [_event("e", f"u{i}") for i in range(10)]
    response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps({"api_key": project.api_token,
                                                                          "batch": events}))
    assert response.status_code == 200
    for _ in range(120):
        if tap.exists() and len(set(tap.read_text().split())) >= len(events):
            break
        await asyncio.sleep(0.25)
    assert set(tap.read_text().split()) == {e["uuid"] for e in events}
