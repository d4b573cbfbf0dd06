"""Project limits, restrictions, overflow and routing at the gateway, against the real stack."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
from posthog import Posthog

from headwater.runtime.projects import Project, revoke_project, update_project
from headwater.runtime.restrictions import add_restriction
from headwater.runtime.settings import Endpoints
from tests.support.kafka import read_topic
from tests.support.processes import StartGateway
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until


def _events(n: int, distinct_id: str = "d", event: str = "e") -> list[dict[str, Any]]:
    return [{"event": event, "distinct_id": distinct_id, "uuid": str(uuid.uuid4()), "properties": {"i": i}}
            for i in range(n)]


def _post(url: str, token: str, events: list[dict[str, Any]], **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/batch/", content=orjson.dumps({"api_key": token, "batch": events, **body}), timeout=15)


def _uuids_in(stack: Endpoints, pipeline: Pipeline, topic: str) -> list[str]:
    partitions = pipeline.topology.topics[topic].partitions
    return [e["uuid"] for r in read_topic(stack.kafka, topic, partitions) for e in r.events]


async def test_monthly_quota_drops_but_answers_200(stack: Endpoints, pipeline: Pipeline, project: Project,
                                                   start_gateway: StartGateway) -> None:
    await update_project(stack.postgres, project.id, monthly_event_quota=10)
    gateway = start_gateway(pipeline)
    batches = [_events(5) for _ in range(3)]
    for batch in batches:
        assert _post(gateway.url, project.api_token, batch).status_code == 200
    landed = set(_uuids_in(stack, pipeline, pipeline.topology.capture.topic))
    assert landed == {e["uuid"] for b in batches[:2] for e in b}
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'headwater_capture_events_dropped_total{reason="quota_limited"} 5.0' in metrics


async def test_rate_limit_answers_429_with_retry_after(stack: Endpoints, pipeline: Pipeline, project: Project,
                                                       start_gateway: StartGateway) -> None:
    await update_project(stack.postgres, project.id, rate_limit_per_second=2.0)  # burst: 20 events
    gateway = start_gateway(pipeline)
    assert _post(gateway.url, project.api_token, _events(15)).status_code == 200
    limited = _post(gateway.url, project.api_token, _events(15))
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert limited.headers["retry-after"] == "1"
    assert len(_uuids_in(stack, pipeline, pipeline.topology.capture.topic)) == 15


async def test_restrictions_drop_dead_letter_overflow_and_skip_persons(
    stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway
) -> None:
    await add_restriction(stack.postgres, project.id, "drop", events=["spam"], distinct_ids=[], uuids=[])
    await add_restriction(stack.postgres, project.id, "dead_letter", events=[], distinct_ids=["bad-user"], uuids=[])
    await add_restriction(stack.postgres, project.id, "force_overflow", events=["noisy"], distinct_ids=[], uuids=[])
    await add_restriction(stack.postgres, project.id, "skip_person_processing", events=["anon"], distinct_ids=[],
                          uuids=[])
    gateway = start_gateway(pipeline)
    spam, bad, noisy, anon, fine = (_events(2, event="spam"), _events(2, distinct_id="bad-user"),
                                    _events(2, event="noisy"), _events(2, event="anon"), _events(2))
    assert _post(gateway.url, project.api_token, spam + bad + noisy + anon + fine).status_code == 200

    capture = pipeline.topology.capture
    live = read_topic(stack.kafka, capture.topic, pipeline.topology.topics[capture.topic].partitions)
    live_events = {e["uuid"]: e for r in live for e in r.events}
    assert set(live_events) == {e["uuid"] for e in anon + fine}
    assert all(live_events[e["uuid"]]["skip_person_processing"] for e in anon)
    assert not any(live_events[e["uuid"]]["skip_person_processing"] for e in fine)

    overflow = read_topic(stack.kafka, capture.overflow_topic,
                          pipeline.topology.topics[capture.overflow_topic].partitions)
    assert {e["uuid"] for r in overflow for e in r.events} == {e["uuid"] for e in noisy}
    assert all(r.key is None for r in overflow)

    dlq_topic = pipeline.topology.pipeline.dead_letter
    dead = read_topic(stack.kafka, dlq_topic, pipeline.topology.topics[dlq_topic].partitions)
    assert {e["uuid"] for r in dead for e in r.events} == {e["uuid"] for e in bad}
    assert all(r.headers["reason"] == b"event_restriction" and r.headers["stage"] == b"capture" for r in dead)


def test_hot_keys_overflow_without_a_key(stack: Endpoints, pipeline: Pipeline, project: Project,
                                         start_gateway: StartGateway) -> None:
    gateway = start_gateway(pipeline, HEADWATER_OVERFLOW_EVENTS_PER_SECOND="1", HEADWATER_OVERFLOW_BURST="5")
    hot, calm = _events(20, distinct_id="hot"), _events(3, distinct_id="calm")
    assert _post(gateway.url, project.api_token, hot + calm).status_code == 200
    capture = pipeline.topology.capture
    live = read_topic(stack.kafka, capture.topic, pipeline.topology.topics[capture.topic].partitions)
    overflow = read_topic(stack.kafka, capture.overflow_topic,
                          pipeline.topology.topics[capture.overflow_topic].partitions)
    live_ids = [e["uuid"] for r in live for e in r.events]
    assert live_ids.count(hot[0]["uuid"]) == 1
    assert {e["uuid"] for e in calm} <= set(live_ids)
    hot_live = [u for u in live_ids if u in {e["uuid"] for e in hot}]
    assert hot_live == [e["uuid"] for e in hot[:5]]  # the burst, in order
    assert [e["uuid"] for r in overflow for e in r.events] == [e["uuid"] for e in hot[5:]]
    assert all(r.key is None for r in overflow)
    for record in live:  # an envelope's key is the one key its events share, else none
        ids = {e["distinct_id"] for e in record.events}
        expected = f"{project.api_token}:{ids.pop()}".encode() if len(ids) == 1 else None
        assert record.key == expected


def test_historical_migration_goes_to_its_own_topic(stack: Endpoints, pipeline: Pipeline, project: Project,
                                                    start_gateway: StartGateway) -> None:
    gateway = start_gateway(pipeline)
    events = _events(30, distinct_id="importer")
    assert _post(gateway.url, project.api_token, events, historical_migration=True).status_code == 200
    assert _uuids_in(stack, pipeline, pipeline.topology.capture.historical_topic) == [e["uuid"] for e in events]
    assert _uuids_in(stack, pipeline, pipeline.topology.capture.topic) == []


def test_v1_protocol_with_the_python_sdk(stack: Endpoints, pipeline: Pipeline, project: Project,
                                         start_gateway: StartGateway) -> None:
    gateway = start_gateway(pipeline)
    for compression in ("gzip", "zstd", None):
        client = Posthog(project.api_token, host=gateway.url, capture_mode="v1", capture_compression=compression,
                         flush_at=10, max_retries=0)
        sent = [str(client.capture("v1_event", distinct_id=f"v1-{i}", properties={"c": str(compression)}))
                for i in range(12)]
        client.shutdown()
        records = read_topic(stack.kafka, pipeline.topology.capture.topic,
                             pipeline.topology.topics[pipeline.topology.capture.topic].partitions)
        landed = {e["uuid"]: e for r in records for e in r.events}
        for i, event_uuid in enumerate(sent):
            assert landed[event_uuid]["distinct_id"] == f"v1-{i}"
            assert orjson.loads(landed[event_uuid]["properties"])["c"] == str(compression)


def test_v1_answers_a_result_per_event(stack: Endpoints, pipeline: Pipeline, project: Project,
                                       start_gateway: StartGateway) -> None:
    gateway = start_gateway(pipeline)
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"created_at": "2024-01-01T00:00:00Z", "batch": [
        {"event": "ok", "uuid": good, "distinct_id": "d", "timestamp": "2024-01-01T00:00:00Z", "properties": {}},
        {"event": "", "uuid": bad, "distinct_id": "d", "properties": {}},
    ]}
    url = f"{gateway.url}/i/v1/analytics/events"
    response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {project.api_token}"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[good] == {"result": "ok"}
    assert results[bad]["result"] == "drop"
    assert httpx.post(url, json=body).status_code == 401
    unsupported = httpx.post(url, content=b"{}", headers={"Authorization": f"Bearer {project.api_token}",
                                                          "Content-Encoding": "br"})
    assert (unsupported.status_code, unsupported.json()["code"]) == (415, "unsupported_encoding")


async def test_revoked_token_stops_within_the_cache_time(stack: Endpoints, pipeline: Pipeline, project: Project,
                                                         start_gateway: StartGateway) -> None:
    gateway = start_gateway(pipeline, HEADWATER_TOKEN_CACHE_SECONDS="1")
    assert _post(gateway.url, project.api_token, _events(1)).status_code == 200
    await revoke_project(stack.postgres, project.id)
    wait_until(lambda: _post(gateway.url, project.api_token, _events(1)).status_code == 401, 10,
               "the revoked token still works", interval=0.2, logs=[gateway.process])


async def test_client_ip_trusted_proxies_and_discard(stack: Endpoints, pipeline: Pipeline, project: Project,
                                                     start_gateway: StartGateway) -> None:
    gateway = start_gateway(pipeline, HEADWATER_TRUSTED_PROXIES='["127.0.0.1"]', HEADWATER_TOKEN_CACHE_SECONDS="1")
    forwarded = _events(1, distinct_id="via-proxy")
    response = httpx.post(f"{gateway.url}/batch/", headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"},
                          content=orjson.dumps({"api_key": project.api_token, "batch": forwarded}))
    assert response.status_code == 200
    records = read_topic(stack.kafka, pipeline.topology.capture.topic,
                         pipeline.topology.topics[pipeline.topology.capture.topic].partitions)
    assert [e["ip"] for r in records for e in r.events] == ["203.0.113.9"]

    await update_project(stack.postgres, project.id, discard_client_ip=True)

    def ip_of_a_new_event(distinct_id: str) -> str | None:
        [event] = _events(1, distinct_id=distinct_id)
        assert _post(gateway.url, project.api_token, [event]).status_code == 200
        records = read_topic(stack.kafka, pipeline.topology.capture.topic,
                             pipeline.topology.topics[pipeline.topology.capture.topic].partitions)
        [landed] = [e for r in records for e in r.events if e["uuid"] == event["uuid"]]
        ip: str | None = landed["ip"]
        return ip

    # The gateway caches the project (in process and in Redis) for a second: probe until it sees the change.
    wait_until(lambda: ip_of_a_new_event("probe") is None, 10, "the gateway still keeps client IPs",
               interval=0.2, logs=[gateway.process])
    assert ip_of_a_new_event("private") is None
