"""The worker's ``/_liveness`` and ``/_readiness``: ready when Kafka, Postgres, Redis and every sink's
destination answer; a destination that fails makes it unready (503, saying which) while it stays live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from headwater.stack.process import pick_port
from tests.support.processes import Process, StartGateway, StartWorker
from tests.support.topology import fresh_prefix, isolated_pipeline, isolated_topology
from tests.support.waiting import wait_until


def _readiness(worker: Process) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{worker.url}/_readiness", timeout=10)
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def test_readiness_names_each_dependency_and_turns_503_when_a_destination_fails(
        stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
        tmp_path: Path) -> None:
    doc = isolated_topology(fresh_prefix("r"))
    closed = pick_port(0)  # nothing listens there
    doc["sinks"].append({"name": "hook", "type": "webhook", "source": doc["pipeline"]["output"],
                         "config": {"url": f"http://127.0.0.1:{closed}/hook", "secret_env": "HOOK_SECRET"}})
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", doc)
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline, HOOK_SECRET="s")

    ready = wait_until(lambda: _readiness(worker)[0] == 200, 90, lambda: f"never ready: {_readiness(worker)[1]}",
                       interval=0.5, logs=[worker.log], ignore=(httpx.HTTPError,))
    assert ready
    _, body = _readiness(worker)
    assert {"kafka", "postgres", "redis", "sink:clickhouse", "sink:hook"} <= set(body["checks"])
    assert all(check["ok"] for check in body["checks"].values()), body

    response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps(
        {"api_key": project.api_token, "batch": [{"event": "purchase", "distinct_id": "u1"}]}), timeout=30)
    assert response.status_code == 200

    def failing() -> dict[str, Any] | None:
        status, answer = _readiness(worker)
        return answer if status == 503 and not answer["checks"]["sink:hook"]["ok"] else None

    answer = wait_until(failing, 60, lambda: f"still ready: {_readiness(worker)[1]}", interval=0.5,
                        logs=[worker.log])
    assert answer is not None
    assert "failing" in answer["checks"]["sink:hook"]["detail"]
    assert answer["checks"]["kafka"]["ok"]
    assert answer["checks"]["sink:clickhouse"]["ok"]
    assert httpx.get(f"{worker.url}/_liveness", timeout=10).status_code == 200
