"""Plugins that raise, time out or drop follow their stage's policy; other keys keep flowing; nothing is lost."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.support import ROOT
from tests.support.clickhouse import select, wait_for_count
from tests.support.kafka import messages
from tests.support.metrics import Metrics, scrape
from tests.support.processes import StartGateway, StartWorker, headwater_command, stack_env
from tests.support.topology import fresh_prefix, isolated_pipeline, isolated_topology
from tests.support.waiting import wait_until

PLUGINS = "tests.fixtures.plugins"


def _with_plugins(prefix: str, *, fail: bool) -> dict[str, Any]:
    """The default topology under ``prefix`` with the misbehaving plugins before ``prepare``."""
    doc = isolated_topology(prefix)
    plugin_stages: list[dict[str, Any]] = [
        {"name": "raiser", "type": "plugin", "plugin": f"{PLUGINS}:Raiser", "config": {"fail": fail},
         "on_error": "dead_letter"},
        {"name": "sleeper", "type": "plugin", "plugin": f"{PLUGINS}:Sleeper", "config": {"seconds": 30},
         "on_error": "drop", "timeout_seconds": 0.5},
        {"name": "blocking", "type": "plugin", "plugin": f"{PLUGINS}:BlockingSleeper", "config": {"seconds": 3},
         "on_error": "drop", "timeout_seconds": 0.5},
        {"name": "dropper", "type": "plugin", "plugin": f"{PLUGINS}:Dropper"},
    ]
    doc["pipeline"]["stages"][-1:-1] = plugin_stages
    return doc


def _event(kind: str, distinct_id: str, **props: Any) -> dict[str, Any]:
    return {"event": kind, "distinct_id": distinct_id, "uuid": str(uuid.uuid4()), "properties": props}


def _metric(metrics: Metrics, metric: str, /, **labels: str) -> float:
    value = metrics.value(metric, **labels)
    assert value is not None, f"no {metric}{labels} in the worker's metrics"
    return value


async def test_plugin_failures_follow_their_policy_and_nothing_is_lost(
    stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker, tmp_path: Path
) -> None:
    prefix = fresh_prefix("p")
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", _with_plugins(prefix, fail=True))
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

    metrics = scrape(f"{worker.url}/metrics")
    assert _metric(metrics, "headwater_stream_events_dead_lettered_total", stage="raiser") == 3
    # the batch's call timed out, and so did each half holding a slow event, down to the two alone
    assert _metric(metrics, "headwater_stream_stage_timeouts_total", stage="sleeper") >= 2
    assert _metric(metrics, "headwater_stream_events_dropped_total", stage="sleeper", reason="error") == 2
    assert _metric(metrics, "headwater_stream_events_dropped_total", stage="dropper", reason="dropped_by_plugin") == 2
    passed_blocking = len(fine) + len(dropped)  # the dropper comes after it
    assert _metric(metrics, "headwater_plugin_events_total", stage="blocking", name="blocking_seen") == passed_blocking

    warnings = await wait_for_count(
        stack, f"SELECT count() FROM ingestion_warnings FINAL WHERE team_id = {project.id} "
               f"AND type = 'event_dropped_by_transformation'", 1)
    assert warnings == 1  # two drops, same key: one warning an hour

    # After the fix (the raiser no longer fails), the dead-lettered events replay and land.
    worker.stop()
    fixed = isolated_pipeline(stack.kafka, tmp_path / "fixed.yaml", _with_plugins(prefix, fail=False))
    start_worker(fixed)
    env = {**os.environ, **stack_env(stack), "HEADWATER_TOPOLOGY": str(fixed.path)}
    listed = subprocess.run(headwater_command("dlq", "list", "--json"), env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    letters = json.loads(listed.stdout)
    assert sorted(letter["uuid"] for letter in letters) == sorted(e["uuid"] for e in boom)
    assert {(letter["stage"], letter["reason"]) for letter in letters} == {("raiser", "error")}
    assert all("RuntimeError: boom" in letter["error"] for letter in letters)
    subprocess.run(headwater_command("dlq", "replay", "--filter", "stage=raiser"), env=env, cwd=ROOT,
                   capture_output=True, text=True, timeout=60, check=True)
    total = len(fine) + len(boom)
    assert await wait_for_count(stack, f"SELECT count() FROM {table}", total) == total


def _tapped(tap: Path) -> list[list[str]]:
    """What ``tests.fixtures.agents:tap`` wrote: one ``[agent, uuid, team_id, person_id, plan]`` per event."""
    return [line.split() for line in tap.read_text().splitlines()] if tap.exists() else []


async def test_a_plugin_agent_gets_processed_events_with_their_person(
        stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
        tmp_path: Path) -> None:
    doc = isolated_topology(fresh_prefix("a"))
    doc["agents"] = [{"name": "tap", "source": doc["pipeline"]["output"], "handler": "tests.fixtures.agents:tap"}]
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", doc)
    gateway = start_gateway(pipeline)
    tap = tmp_path / "tap.txt"
    worker = start_worker(pipeline, HEADWATER_TEST_TAP_FILE=str(tap))
    events = [_event("e", f"u{i}", **{"$set": {"plan": "pro"}}) for i in range(10)]
    response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps({"api_key": project.api_token,
                                                                          "batch": events}))
    assert response.status_code == 200

    wait_until(lambda: len(_tapped(tap)) >= len(events), 60, lambda: f"the agent tapped {len(_tapped(tap))} events",
               interval=0.25, logs=[worker])
    rows = _tapped(tap)
    assert sorted(uuid for _, uuid, *_ in rows) == sorted(e["uuid"] for e in events)
    table = f"events FINAL WHERE team_id = {project.id}"
    assert await wait_for_count(stack, f"SELECT count() FROM {table}", len(events)) == len(events)
    persons = await select(stack, f"SELECT toString(uuid), toString(person_id) FROM events FINAL "
                                  f"WHERE team_id = {project.id}")
    assert {(uuid, str(project.id), person, "pro") for uuid, person in persons.rows} == {
        (uuid, team, person, plan) for _, uuid, team, person, plan in rows}


async def test_a_new_agent_starts_where_the_topology_says(
        stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
        tmp_path: Path) -> None:
    doc = isolated_topology(fresh_prefix("a"))
    doc["agents"] = [{"name": name, "source": doc["capture"]["topic"], "handler": "tests.fixtures.agents:tap",
                      "start": name} for name in ("earliest", "latest")]
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", doc)
    gateway = start_gateway(pipeline)

    def send(events: list[dict[str, Any]]) -> None:
        response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps({"api_key": project.api_token,
                                                                              "batch": events}))
        assert response.status_code == 200  # in Kafka

    before = [_event("before", f"u{i}") for i in range(5)]
    send(before)  # while no worker runs: only an agent that starts at the earliest offset sees them
    tap = tmp_path / "tap.txt"
    worker = start_worker(pipeline, HEADWATER_TEST_TAP_FILE=str(tap))

    def seen(agent: str) -> set[str]:
        return {uuid for name, uuid, *_ in _tapped(tap) if name == agent}

    wait_until(lambda: seen("earliest") >= {e["uuid"] for e in before}, 60,
               lambda: f"the earliest agent tapped {len(seen('earliest'))} of {len(before)}", interval=0.25,
               logs=[worker])
    after: list[dict[str, Any]] = []

    def latest_caught_up() -> bool:  # it joins its group on its own time: send until it taps
        if not seen("latest") & {e["uuid"] for e in after}:
            after.append(_event("after", "u-after"))
            send(after[-1:])
            return False
        return True

    wait_until(latest_caught_up, 60, "the latest agent tapped nothing sent after the worker started", interval=0.5,
               logs=[worker])
    assert not seen("latest") & {e["uuid"] for e in before}
    # a capture topic's events have no project yet
    assert {team for name, _, team, *_ in _tapped(tap) if name == "earliest"} == {"None"}


@pytest.mark.parametrize("on_error", ["stop", "dead_letter"])
async def test_a_failing_plugin_agent_follows_its_policy(stack: Endpoints, project: Project,
                                                         start_gateway: StartGateway, start_worker: StartWorker,
                                                         tmp_path: Path, on_error: str) -> None:
    doc = isolated_topology(fresh_prefix("a"))
    doc["agents"] = [{"name": "picky", "source": doc["pipeline"]["output"], "on_error": on_error,
                      "handler": "tests.fixtures.agents:tap_or_fail"}]
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", doc)
    gateway = start_gateway(pipeline)
    tap = tmp_path / "tap.txt"
    worker = start_worker(pipeline, HEADWATER_TEST_TAP_FILE=str(tap))

    def send(events: list[dict[str, Any]]) -> None:
        response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps({"api_key": project.api_token,
                                                                              "batch": events}))
        assert response.status_code == 200

    def tapped() -> set[str]:
        return set(tap.read_text().split()) if tap.exists() else set()

    send([_event("boom", "u0")])
    if on_error == "stop":
        wait_until(lambda: worker.exit_code() is not None, 60, "the worker kept running after its agent failed",
                   interval=0.25, logs=[worker])
        assert worker.exit_code() != 0
        assert "agent picky failed (RuntimeError: cannot handle" in worker.log.read_text(errors="replace")
        return
    later = [_event("e", f"u{i}") for i in range(5)]
    wait_until(lambda: "agent picky failed" in worker.log.read_text(errors="replace"), 60,
               "the agent never failed", interval=0.25, logs=[worker])
    send(later)
    wait_until(lambda: tapped() >= {e["uuid"] for e in later}, 60, lambda: f"the agent tapped {len(tapped())}",
               interval=0.25, logs=[worker])
    env = {**os.environ, **stack_env(stack), "HEADWATER_TOPOLOGY": str(pipeline.path)}
    listed = subprocess.run(headwater_command("dlq", "list", "--json"), env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    letters = json.loads(listed.stdout)
    assert [(letter["stage"], letter["reason"]) for letter in letters] == [("agent_picky", "agent_failed")]
    assert "RuntimeError: cannot handle" in letters[0]["error"]
    assert worker.exit_code() is None
    # replayed, the envelope goes back on its topic with its count, as every envelope there has one
    subprocess.run(headwater_command("dlq", "replay", "--filter", "stage=agent_picky"), env=env, cwd=ROOT,
                   capture_output=True, text=True, timeout=60, check=True)
    output = doc["pipeline"]["output"]
    replayed = [m for m in messages(stack.kafka, output, pipeline.topology.topics[output].partitions)
                if "replayed_from" in dict(m.headers() or [])]
    assert [dict(m.headers() or [])["count"] for m in replayed] == [b"1"]
