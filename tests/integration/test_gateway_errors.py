"""Bad input and a broken Kafka answer clearly: JSON errors with a code, never a 200 for an unwritten event."""

from __future__ import annotations

import gzip
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from headwater.runtime.projects import Project
from headwater.runtime.settings import Settings
from headwater.stack.kafka import KafkaService
from headwater.stack.process import pick_port, terminate
from headwater.stack.service import StackContext
from headwater.stack.state import ServiceRecord
from tests.support.kafka import read_uuids
from tests.support.processes import StartGateway
from tests.support.topology import Pipeline, isolated_pipeline, isolated_topology
from tests.support.waiting import wait_until


def _batch(token: str, n: int = 1, uuids: list[str] | None = None) -> bytes:
    ids = uuids if uuids is not None else [str(uuid.uuid4()) for _ in range(n)]
    return orjson.dumps({
        "api_key": token,
        "batch": [{"event": "e", "distinct_id": f"d{i}", "uuid": u} for i, u in enumerate(ids)],
    })


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["error"]


def test_bad_input_gets_a_json_error_with_a_code(pipeline: Pipeline, project: Project,
                                                 start_gateway: StartGateway) -> None:
    gateway = start_gateway(pipeline)

    def post(body: bytes, **kw: Any) -> httpx.Response:
        return httpx.post(f"{gateway.url}/batch/", content=body, timeout=10, **kw)

    _error(post(b"{not json"), 400, "invalid_json")
    _error(post(b""), 400, "empty_payload")
    _error(post(gzip.compress(b"[1,2")), 400, "invalid_json")
    _error(post(b"\x1f\x8b\x08garbage"), 400, "invalid_compression")
    _error(post(b'{"batch": [{"event": "e", "distinct_id": "d"}]}'), 401, "missing_token")
    _error(post(_batch("phc_no_such_project")), 401, "unknown_token")
    _error(post(_batch("phx_personal")), 401, "personal_api_key")
    _error(post(orjson.dumps({"api_key": project.api_token, "batch": [{"distinct_id": "d"}]})), 400, "missing_event")
    _error(post(orjson.dumps({"api_key": project.api_token, "batch": [{"event": "e"}]})), 400, "missing_distinct_id")
    _error(post(orjson.dumps({"api_key": project.api_token, "batch": [{"event": "e", "distinct_id": "d",
                                                                        "uuid": "nope"}]})), 400, "invalid_uuid")
    bomb = gzip.compress(b" " * (21 * 1024 * 1024))
    _error(post(bomb), 413, "payload_too_large")
    huge = {"event": "huge_upload", "distinct_id": "d", "properties": {"blob": "x" * 1_000_000}}
    too_large = post(orjson.dumps({"api_key": project.api_token, "batch": [{"event": "e", "distinct_id": "d"}, huge]}))
    _error(too_large, 413, "event_too_large")
    assert "event 1 of the request ('huge_upload')" in too_large.json()["error"]  # what the sender knows
    v1 = httpx.post(f"{gateway.url}/i/v1/analytics/events", content=b'{"batch": []}', timeout=10)
    _error(v1, 401, "missing_token")
    assert "Authorization: Bearer" in v1.json()["error"]
    ok = post(_batch(project.api_token, 3))
    assert ok.status_code == 200
    assert ok.json() == {"status": "Ok"}


PrivateKafka = tuple[KafkaService, StackContext, ServiceRecord]


@pytest.fixture
def private_kafka(settings: Settings, tmp_path: Path) -> Iterator[PrivateKafka]:
    """A Kafka broker of this test's own, so stopping it disturbs no other test."""
    ctx = StackContext(state_dir=tmp_path / "kafka-state", cache_dir=settings.cache_dir)
    service = KafkaService()
    record = service.start(ctx, pick_port(0))
    yield service, ctx, record
    terminate(record.pid)
    shutil.rmtree(ctx.state_dir, ignore_errors=True)


def test_kafka_stopped_mid_load_every_200_is_in_kafka(private_kafka: PrivateKafka, project: Project,
                                                      start_gateway: StartGateway, tmp_path: Path) -> None:
    """Senders keep posting while the broker is stopped and restarted: 200 means written, else 503."""
    service, ctx, record = private_kafka
    pipeline = isolated_pipeline(record.url, tmp_path / "topology.yaml", isolated_topology("down_"))
    topology = pipeline.topology
    gateway = start_gateway(pipeline, HEADWATER_KAFKA_BOOTSTRAP=record.url, HEADWATER_PRODUCE_TIMEOUT_SECONDS="3")

    outcomes: list[tuple[float, int, list[str]]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender() -> None:
        with httpx.Client(timeout=15) as client:
            while not stop.is_set():
                ids = [str(uuid.uuid4()) for _ in range(4)]
                response = client.post(f"{gateway.url}/batch/", content=_batch(project.api_token, uuids=ids))
                with lock:
                    outcomes.append((time.monotonic(), response.status_code, ids))
                time.sleep(0.02)  # pacing: a steady load, not a flood

    def answered(status: int, after: float, at_least: int = 1) -> bool:
        with lock:
            return sum(1 for t, s, _ in outcomes if s == status and t > after) >= at_least

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    restarted: ServiceRecord | None = None
    try:
        wait_until(lambda: answered(200, 0, at_least=20), 30, "no 200s with Kafka up", logs=[gateway.process])
        terminate(record.pid)
        killed_at = time.monotonic()
        # the produce timeout is 3 s: requests then get their 503
        wait_until(lambda: answered(503, killed_at, at_least=8), 30, "no 503 with Kafka down",
                   logs=[gateway.process])
        restarted = service.start(ctx, record.port)
        recovered_at = time.monotonic()
        wait_until(lambda: answered(200, recovered_at, at_least=20), 60, "no 200s after Kafka came back",
                   logs=[gateway.process])
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    try:
        statuses = {status for _, status, _ in outcomes}
        assert statuses <= {200, 503}, statuses
        assert any(s == 200 for t, s, _ in outcomes if t < killed_at)
        assert any(s == 503 for t, s, _ in outcomes if killed_at < t < recovered_at)
        assert any(s == 200 for t, s, _ in outcomes if t > recovered_at)
        accepted = {u for _, status, ids in outcomes if status == 200 for u in ids}
        partitions = topology.topics[topology.capture.topic].partitions
        missing = accepted - set(read_uuids(restarted.url, topology.capture.topic, partitions))
        assert not missing, f"{len(missing)} events answered 200 are not in Kafka"
    finally:
        if restarted is not None:
            terminate(restarted.pid)


def test_readiness_follows_kafka_down_and_up(private_kafka: PrivateKafka, start_gateway: StartGateway,
                                             tmp_path: Path) -> None:
    """/_readiness says 503 with a reason while Kafka is down (capture answers 503 then), 200 once it is back."""
    service, ctx, record = private_kafka
    pipeline = isolated_pipeline(record.url, tmp_path / "topology.yaml", isolated_topology("ready_"))
    gateway = start_gateway(pipeline, HEADWATER_KAFKA_BOOTSTRAP=record.url)

    def readiness() -> httpx.Response:
        return httpx.get(f"{gateway.url}/_readiness", timeout=10)

    wait_until(lambda: readiness().status_code == 200, 30, "not ready with Kafka up", logs=[gateway.process])
    terminate(record.pid)
    def unready() -> dict[str, str] | None:
        response = readiness()
        return response.json() if response.status_code == 503 else None

    down = wait_until(unready, 20, "still ready with Kafka down", logs=[gateway.process])
    assert down is not None
    assert down["code"] == "kafka_unavailable"
    assert "Kafka" in down["error"]
    restarted = service.start(ctx, record.port)
    try:
        wait_until(lambda: readiness().status_code == 200, 60, "not ready after Kafka came back",
                   logs=[gateway.process])
    finally:
        terminate(restarted.pid)
