"""Bad input and a broken Kafka answer clearly: JSON errors with a code, never a 200 for an unwritten event."""

from __future__ import annotations

import gzip
import shutil
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from headwater.projects import Project
from headwater.settings import Endpoints, Settings
from headwater.stack.kafka import KafkaService
from headwater.stack.process import pick_port, terminate
from headwater.stack.service import StackContext
from tests.conftest import isolated_topology, write_yaml
from tests.integration.conftest import Pipeline, read_uuids


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


def test_bad_input_gets_a_json_error_with_a_code(pipeline, project: Project, start_gateway) -> None:
    gateway = start_gateway(pipeline)
    post = lambda body, **kw: httpx.post(f"{gateway.url}/batch/", content=body, timeout=10, **kw)  # noqa: E731
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
    ok = post(_batch(project.api_token, 3))
    assert ok.status_code == 200
    assert ok.json() == {"status": "Ok"}


@pytest.fixture
def private_kafka(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A Kafka broker of this test's own, so stopping it disturbs no other test."""
    ctx = StackContext(state_dir=tmp_path / "kafka-state", cache_dir=settings.cache_dir)
    service = KafkaService()
    record = service.start(ctx, pick_port(0))
    yield service, ctx, record
    terminate(record.pid)
    shutil.rmtree(ctx.state_dir, ignore_errors=True)


def test_kafka_down_answers_503_and_never_200(private_kafka, stack: Endpoints, project: Project, start_gateway,
                                              tmp_path: Path) -> None:
    from headwater.migrate import migrate_kafka
    from streams.topology import load_topology

    service, ctx, record = private_kafka
    path = write_yaml(tmp_path / "topology.yaml", isolated_topology("down_"))
    topology = load_topology(path)
    migrate_kafka(record.url, topology, lambda _: None)

    gateway = start_gateway(Pipeline(path, topology), HEADWATER_KAFKA_BOOTSTRAP=record.url,
                            HEADWATER_PRODUCE_TIMEOUT_SECONDS="3")

    accepted: list[str] = []
    for _ in range(5):
        ids = [str(uuid.uuid4()) for _ in range(4)]
        response = httpx.post(f"{gateway.url}/batch/", content=_batch(project.api_token, uuids=ids), timeout=15)
        assert response.status_code == 200, response.text
        accepted += ids

    terminate(record.pid)
    for _ in range(3):
        response = httpx.post(f"{gateway.url}/batch/", content=_batch(project.api_token, 4), timeout=15)
        _error(response, 503, "kafka_unavailable")

    # The broker comes back: what was answered 200 is there, and the gateway recovers.
    restarted = service.start(ctx, record.port)
    try:
        in_kafka = read_uuids(restarted.url, topology.capture.topic, topology.topics[topology.capture.topic].partitions)
        assert set(accepted) <= set(in_kafka)
        statuses = []
        for _ in range(20):
            ids = [str(uuid.uuid4()) for _ in range(4)]
            response = httpx.post(f"{gateway.url}/batch/", content=_batch(project.api_token, uuids=ids), timeout=15)
            statuses.append(response.status_code)
            if response.status_code == 200:
                accepted += ids
                break
        assert statuses[-1] == 200, statuses
        in_kafka = read_uuids(restarted.url, topology.capture.topic, topology.topics[topology.capture.topic].partitions)
        assert set(accepted) <= set(in_kafka)
    finally:
        terminate(restarted.pid)
