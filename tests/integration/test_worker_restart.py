"""Stopping and restarting the worker loses no event and duplicates none in query results."""

from __future__ import annotations

import json
import re
import signal
import uuid

import httpx
import psycopg
import pytest
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from headwater.stack.process import pick_port
from tests.support.clickhouse import count, select, wait_for_count
from tests.support.kafka import committed, lag
from tests.support.metrics import scrape
from tests.support.processes import Process, StartGateway, StartWorker
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until


def _send(url: str, token: str, n: int, tag: str) -> set[str]:
    client = Posthog(token, host=url, flush_at=50, max_retries=0)
    sent = set()
    for i in range(n):
        event_uuid = str(uuid.uuid4())
        client.capture(f"{tag}_event", distinct_id=f"user-{i % 11}",
                       properties={"i": i, "$set": {"last": f"{tag}-{i}"}}, uuid=event_uuid)
        sent.add(event_uuid)
    client.shutdown()
    return sent


async def _persons_in_clickhouse_match_postgres(stack: Endpoints, team: int) -> bool:
    """Every person Postgres holds is in ClickHouse's ``person`` table at the same version, and no other."""
    async with await psycopg.AsyncConnection.connect(stack.postgres) as conn:
        cur = await conn.execute("SELECT uuid::text, properties, version FROM persons WHERE project_id = %s", (team,))
        stored = {uuid: (properties, version) for uuid, properties, version in await cur.fetchall()}
    rows = (await select(stack, f"SELECT toString(id), properties, version FROM person FINAL "
                                f"WHERE team_id = {team} AND is_deleted = 0")).rows
    in_clickhouse = {uuid: (json.loads(properties), int(version)) for uuid, properties, version in rows}
    return bool(stored) and stored == in_clickhouse


def _wait_caught_up(stack: Endpoints, pipeline: Pipeline, topics: dict[str, int], worker: Process) -> None:
    """Until the worker's group has committed every message of ``topics``."""
    wait_until(lambda: lag(stack.kafka, pipeline.group, topics) == 0, 60,
               f"the worker did not commit everything of {sorted(topics)}", interval=0.5, logs=[worker])


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "killed"])
async def test_restarted_worker_loses_nothing_and_duplicates_nothing(
    stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
    how: signal.Signals,
) -> None:
    gateway = start_gateway(pipeline)
    table = f"events FINAL WHERE team_id = {project.id}"
    first = start_worker(pipeline)
    sent = _send(gateway.url, project.api_token, 400, "before")
    # Stop the worker while it is still working through the first events.
    await wait_for_count(stack, f"SELECT count() FROM {table}", 1, timeout=60, logs=[first])
    first.stop(how)
    sent |= _send(gateway.url, project.api_token, 400, "between")
    second = start_worker(pipeline)
    sent |= _send(gateway.url, project.api_token, 200, "after")

    await wait_for_count(stack, f"SELECT count() FROM {table}", len(sent), timeout=120, logs=[second])
    # A sink writes a redelivered event before it commits it: once the group has committed
    # everything it reads, nothing more will land.
    _wait_caught_up(stack, pipeline, pipeline.worker_reads(), second)
    assert await count(stack, f"SELECT count() FROM {table}") == len(sent)
    landed = {r[0] for r in (await select(stack, f"SELECT toString(uuid) FROM {table}")).rows}
    assert landed == sent
    # person rows too: a write the killed worker committed but never sent is relayed from the outbox
    await wait_until(lambda: _persons_in_clickhouse_match_postgres(stack, project.id), 120,
                     "ClickHouse's person table does not match Postgres", interval=1.0, logs=[second])


async def test_nothing_is_committed_while_the_sink_cannot_write(
    stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway, start_worker: StartWorker
) -> None:
    """A worker whose ClickHouse is unreachable retries and commits nothing its sinks read; its successor writes it all.

    The proof does not rest on time passing. (1) The sink retries: the worker joined its group,
    holds partitions, and the sink has a batch it cannot flush. (2) Events sent after that are
    committed on the pipeline's source topics: a commit of the worker's group ran after the
    sink's batch was in flight, and Faust commits every acked offset of the group in one go.
    (3) Yet the group has no offset on the sinks' source topics, then or after a graceful stop
    (Faust commits acked offsets on the way out). Were the batch acked before its flush, (3)
    fails; were it acked when the worker stops (``take()``'s ``finally``) or when the sink gives
    up, the successor would start after it and (4) would never see every event.
    """
    gateway = start_gateway(pipeline)
    stuck = start_worker(pipeline, HEADWATER_CLICKHOUSE_URL=f"http://127.0.0.1:{pick_port(0)}")
    sent = _send(gateway.url, project.api_token, 300, "stuck")

    def sink_retries() -> float:
        return scrape(f"{stuck.url}/metrics").value("headwater_sink_retries_total", sink="clickhouse") or 0.0

    wait_until(lambda: sink_retries() >= 1, 90, "the sink never retried its first batch", interval=0.5,
               logs=[stuck], ignore=(httpx.HTTPError,))
    sent |= _send(gateway.url, project.api_token, 50, "later")
    _wait_caught_up(stack, pipeline, pipeline.pipeline_sources(), stuck)

    def sinks_committed() -> dict[str, dict[int, int | None]]:
        return {topic: offsets for topic, partitions in pipeline.sink_sources().items()
                if any((offsets := committed(stack.kafka, pipeline.group, topic, partitions)).values())}

    assert sinks_committed() == {}, "offsets committed while the sink could not write"
    assert sink_retries() >= 2, "the sink gave up instead of retrying"
    stuck.stop(signal.SIGTERM)
    assert sinks_committed() == {}, "offsets committed when the worker stopped"
    # the sink's first call to an unreachable server is asking its version (then inserts): either is retried
    assert re.search(r"ClickHouse (insert|version) failed, retrying", stuck.log.read_text(errors="replace"))

    successor = start_worker(pipeline)
    table = f"events FINAL WHERE team_id = {project.id}"
    assert await wait_for_count(stack, f"SELECT count() FROM {table}", len(sent), timeout=120,
                                logs=[successor]) == len(sent)
