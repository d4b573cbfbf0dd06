"""``headwater lag`` against a real worker: a stopped worker's lag grows in messages and seconds with
status STOP (``--fail-on ERR`` exits 1); once it runs again the lag drains to OK (exit 0)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import httpx
import orjson

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.support import ROOT
from tests.support.clickhouse import wait_for_count
from tests.support.processes import StartGateway, StartWorker, headwater_command, stack_env
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until


def _lag(stack: Endpoints, pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack_env(stack), "HEADWATER_TOPOLOGY": str(pipeline.path)}
    return subprocess.run(headwater_command("lag", "--window", "2", "--interval", "0.5", *args), env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def _report(stack: Endpoints, pipeline: Pipeline) -> dict[str, Any]:
    done = _lag(stack, pipeline, "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _pipeline(report: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [g for g in report["groups"] if g["role"] == "pipeline"]
    assert len(found) == 1
    return found[0]


async def test_a_stopped_worker_shows_growing_lag_and_stop_then_drains_to_ok(
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker) -> None:
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    table = f"events FINAL WHERE team_id = {project.id}"
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        batch = [{"event": "lagged", "distinct_id": f"u{n}", "properties": {"n": n}} for n in range(count)]
        response = httpx.post(f"{gateway.url}/batch/",
                              content=orjson.dumps({"api_key": project.api_token, "batch": batch}), timeout=30)
        assert response.status_code == 200
        sent += count

    send(20)
    await wait_for_count(stack, f"SELECT count() FROM {table}", sent, logs=[worker.log])
    wait_until(lambda: _pipeline(_report(stack, pipeline))["status"] == "OK", 60, "the pipeline never got to OK",
               logs=[worker.log])

    worker.stop()
    send(10)
    first = _pipeline(_report(stack, pipeline))
    send(10)
    second = _pipeline(_report(stack, pipeline))
    assert first["members"] == second["members"] == 0
    assert first["status"] == second["status"] == "STOP", second["rule"]
    assert 0 < first["lag"] < second["lag"]  # messages: envelopes, one or more per request
    assert 0 < first["lag_seconds"] < second["lag_seconds"]  # the oldest waiting envelope keeps ageing
    assert "no member of the group reads it" in second["rule"]
    failing = _lag(stack, pipeline, "--fail-on", "ERR")
    assert failing.returncode == 1, failing.stderr
    assert "STOP" in failing.stdout

    worker = start_worker(pipeline)
    await wait_for_count(stack, f"SELECT count() FROM {table}", sent, logs=[worker.log])
    wait_until(lambda: _lag(stack, pipeline, "--fail-on", "ERR").returncode == 0, 90,
               "lag --fail-on ERR never passed after the restart", logs=[worker.log])
    drained = _pipeline(_report(stack, pipeline))
    assert drained["status"] == "OK"
    assert drained["lag"] == 0
    assert drained["members"] >= 1
