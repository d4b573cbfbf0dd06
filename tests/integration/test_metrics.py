"""Every metric docs/metrics.md lists is on the /metrics page of the process it names, and the ones this
issue added carry real values after a few events: consumer lag per partition, capture → ClickHouse
latency, freshness, sink batch sizes, stage latency, events in and out."""

from __future__ import annotations

import httpx
import orjson

from headwater.metrics_docs import reference
from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from streams.lag_metrics import topology_groups
from tests.support.clickhouse import wait_for_count
from tests.support.metrics import Metrics, scrape
from tests.support.processes import StartGateway, StartWorker
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until


def _missing(metrics: Metrics, process: str) -> set[str]:
    return {doc.name for doc in reference() if doc.process == process} - metrics.shown()


async def test_every_documented_metric_is_served_and_the_new_ones_measure(
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker) -> None:
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    batch = [{"event": "measured", "distinct_id": f"u{n}", "properties": {"n": n}} for n in range(20)]
    response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps({"api_key": project.api_token,
                                                                          "batch": batch}), timeout=30)
    assert response.status_code == 200
    await wait_for_count(stack, f"SELECT count() FROM events FINAL WHERE team_id = {project.id}", 20,
                         logs=[worker.log])

    gateway_page = scrape(f"{gateway.url}/metrics")
    assert _missing(gateway_page, "gateway") == set()
    assert (gateway_page.value("headwater_capture_events_ingested_total") or 0) >= 20

    group, sink = pipeline.group, "clickhouse"
    groups = topology_groups(pipeline.topology)
    assert len(groups) > 1  # the default topology's windows read in groups of their own
    capture = pipeline.topology.capture.topic

    def measured() -> Metrics | None:
        page = scrape(f"{worker.url}/metrics")
        caught_up = page.value("headwater_consumer_lag_messages", group=group, topic=capture)
        ready = (caught_up == 0 and page.value("headwater_consumer_lag_seconds", group=group, topic=capture) == 0
                 and (page.value("headwater_sink_end_to_end_seconds_count", sink=sink) or 0) >= 20)
        # one worker: it has every partition of every group it runs (windows' and agents' consumers too)
        every = all((page.value("headwater_consumer_assigned_partitions", group=g) or 0)
                    == (page.value("headwater_consumer_partitions", group=g) or -1) > 0 for g in groups)
        return page if ready and every else None

    found = wait_until(measured, 60, "the worker's lag never read 0 with the events written", interval=0.5,
                       logs=[worker.log])
    assert found is not None
    page = found
    assert _missing(page, "worker") == set()
    assert (page.value("headwater_consumer_committed_offset", group=group, topic=capture) or 0) >= 1
    written = page.value("headwater_sink_end_to_end_seconds_bucket", sink=sink, le="30.0")
    assert written is not None
    assert written >= 20  # well within the objective on an idle machine
    freshness = page.value("headwater_sink_freshness_seconds", sink=sink)
    assert freshness is not None
    assert 0 <= freshness < 120
    assert (page.value("headwater_sink_batch_records_count", sink=sink) or 0) >= 1
    assert (page.value("headwater_stream_stage_seconds_count", stage="validate") or 0) >= 1
    assert (page.value("headwater_stream_events_received_total") or 0) >= 20
    assert (page.value("headwater_stream_events_processed_total") or 0) >= 20
