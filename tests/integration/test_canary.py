"""The canary end to end: heartbeats through the real gateway, timed until ClickHouse has them."""

from __future__ import annotations

import orjson

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from streams.canary import EVENT
from tests.support.clickhouse import select, wait_for_count
from tests.support.metrics import scrape
from tests.support.processes import StartGateway, StartWorker
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until


async def test_heartbeats_land_and_their_age_is_the_freshness(
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker) -> None:
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline, HEADWATER_CANARY_TOKENS=orjson.dumps([project.api_token]).decode(),
                          HEADWATER_CANARY_SECONDS="2", HEADWATER_CANARY_GATEWAY=gateway.url)
    table = f"events FINAL WHERE team_id = {project.id} AND event = '{EVENT}'"
    await wait_for_count(stack, f"SELECT count() FROM {table}", 2, logs=[worker.log])

    def measured() -> float:
        metrics = scrape(f"{worker.url}/metrics")
        found = metrics.value("headwater_canary_seconds_count") or 0
        return (metrics.value("headwater_canary_freshness_seconds") or 0.0) if found >= 2 else 0.0

    freshness = wait_until(measured, 60, "the canary measured nothing", interval=0.5, logs=[worker.log])
    assert 0 < freshness < 60
    metrics = scrape(f"{worker.url}/metrics")
    assert (metrics.value("headwater_canary_sent_total") or 0) >= 2
    assert (metrics.value("headwater_canary_lost_total") or 0) == 0
    rows = await select(stack, f"SELECT distinct_id, person_mode, JSONExtractString(properties, '$lib') FROM {table}")
    assert {tuple(r) for r in rows.rows} == {("headwater-canary", "propertyless", "headwater-canary")}
