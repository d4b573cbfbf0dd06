"""Stopping and restarting the worker loses no event and duplicates none in query results."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.integration.conftest import Pipeline, StartGateway, StartWorker, select, wait_for_count


def _send(url: str, token: str, n: int, tag: str) -> set[str]:
    client = Posthog(token, host=url, flush_at=50, max_retries=0)
    sent = set()
    for i in range(n):
        event_uuid = str(uuid.uuid4())
        client.capture(f"{tag}_event", distinct_id=f"user-{i % 11}", properties={"i": i}, uuid=event_uuid)
        sent.add(event_uuid)
    client.shutdown()
    return sent


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "killed"])
async def test_restarted_worker_loses_nothing_and_duplicates_nothing(
    stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
    how: signal.Signals
) -> None:
    gateway = start_gateway(pipeline)
    table = f"events FINAL WHERE team_id = {project.id}"
    first = start_worker(pipeline)
    sent = _send(gateway.url, project.api_token, 400, "before")
    # Stop the worker while it is still working through the first events.
    await wait_for_count(stack, f"SELECT count() FROM {table}", 1, timeout=60)
    first.stop(how)
    sent |= _send(gateway.url, project.api_token, 400, "between")
    start_worker(pipeline)
    sent |= _send(gateway.url, project.api_token, 200, "after")

    count = await wait_for_count(stack, f"SELECT count() FROM {table}", len(sent), timeout=120)
    time.sleep(2)  # anything redelivered late would land now
    count = int((await select(stack, f"SELECT count() FROM {table}")).rows[0][0])
    assert count == len(sent)
    landed = {r[0] for r in (await select(stack, f"SELECT toString(uuid) FROM {table}")).rows}
    assert landed == sent


async def test_nothing_is_committed_while_the_sink_cannot_write(
    stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway, start_worker: StartWorker
) -> None:
    """A worker whose ClickHouse is unreachable retries and commits nothing; its successor writes it all."""
    from headwater.stack.process import pick_port

    gateway = start_gateway(pipeline)
    dead_clickhouse = f"http://127.0.0.1:{pick_port(0)}"
    stuck = start_worker(pipeline, HEADWATER_CLICKHOUSE_URL=dead_clickhouse)
    sent = _send(gateway.url, project.api_token, 300, "stuck")
    time.sleep(8)  # several commit intervals pass while the sink retries
    stuck.stop(signal.SIGTERM)
    assert "ClickHouse insert failed, retrying" in stuck.tail(200)
    start_worker(pipeline)
    table = f"events FINAL WHERE team_id = {project.id}"
    count = await wait_for_count(stack, f"SELECT count() FROM {table}", len(sent), timeout=120)
    assert count == len(sent)
