"""The walking skeleton end to end: the real posthog SDK → gateway → Kafka → worker → ClickHouse."""

from __future__ import annotations

import uuid

import pytest
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.support.clickhouse import select, wait_for_count
from tests.support.processes import StartGateway, StartWorker
from tests.support.topology import Pipeline


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
async def test_every_sdk_event_lands_in_clickhouse_by_uuid(
    stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
    gzip: bool
) -> None:
    gateway = start_gateway(pipeline)
    start_worker(pipeline)
    client = Posthog(project.api_token, host=gateway.url, gzip=gzip, flush_at=25, max_retries=0)
    sent: dict[str, tuple[str, str]] = {}
    for i in range(120):
        distinct_id = f"user-{i % 7}"
        event = "$pageview" if i % 3 else "signed_up"
        event_uuid = client.capture(event, distinct_id=distinct_id, properties={"i": i, "plan": "pro"},
                                    uuid=str(uuid.uuid4()))
        assert event_uuid is not None
        sent[str(event_uuid)] = (event, distinct_id)
    client.set(distinct_id="user-1", properties={"email": "one@example.com"})
    client.shutdown()  # flushes the queue

    count = await wait_for_count(
        stack, f"SELECT count() FROM events FINAL WHERE team_id = {project.id}", len(sent) + 1)
    assert count == len(sent) + 1

    rows = (await select(stack, f"SELECT toString(uuid), event, distinct_id, JSONExtractInt(properties, 'i') "
                                f"FROM events FINAL WHERE team_id = {project.id} AND event != '$set'")).rows
    landed = {row[0]: (row[1], row[2]) for row in rows}
    assert landed == sent
    person_set = (await select(stack, f"SELECT JSONExtractString(properties, '$set', 'email') FROM events FINAL "
                                      f"WHERE team_id = {project.id} AND event = '$set'")).rows
    assert person_set == [["one@example.com"]]
