"""Windows end to end: the real posthog SDK → gateway → worker (re-key, aggregate) → the window's
topic, checked against a ``GROUP BY`` over the same events in ClickHouse."""

from __future__ import annotations

import random
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.support.clickhouse import select, wait_for_count
from tests.support.kafka import messages
from tests.support.metrics import scrape
from tests.support.processes import StartGateway, StartWorker
from tests.support.topology import fresh_prefix, isolated_pipeline, isolated_topology
from tests.support.waiting import wait_until
from tests.support.windows import result

EVENTS = ("$pageview", "purchase")
MINUTES = 4


def _windowed(prefix: str) -> dict[str, Any]:
    doc = isolated_topology(prefix)
    results, late = f"{prefix}window_results", f"{prefix}window_late"
    doc["topics"][results] = {"partitions": 1}
    doc["topics"][late] = {"partitions": 1}
    doc["windows"].append({
        "name": "per_minute", "source": doc["pipeline"]["output"], "key": ["team_id", "event"],
        "size_seconds": 60, "grace_seconds": 30, "idle_seconds": None, "output": results, "late_topic": late,
        "aggregations": [{"name": "events", "function": "count"},
                         {"name": "users", "function": "uniq", "field": "distinct_id"},
                         {"name": "revenue", "function": "sum", "field": "properties.price"}],
    })
    return doc


@pytest.mark.parametrize("killed", [False, True], ids=["steady", "worker-killed"])
async def test_a_windowed_rollup_counts_what_a_group_by_counts_and_late_events_are_counted_as_late(
        stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
        tmp_path: Path, killed: bool) -> None:
    """Also across a SIGKILL of the worker half-way (``killed``): a new worker restores the windows
    from the changelog, skips what the dead one applied, and every window ends with the same values."""
    doc = _windowed(fresh_prefix("w"))
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", doc)
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    client = Posthog(project.api_token, host=gateway.url, flush_at=50, max_retries=0)
    rng = random.Random(5)
    began = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    table = f"events FINAL WHERE team_id = {project.id}"
    sent = 0

    def capture(event: str, distinct_id: str, at: datetime, price: float) -> None:
        nonlocal sent
        client.capture(event, distinct_id=distinct_id, timestamp=at, properties={"price": price})
        sent += 1

    try:
        for minute in range(MINUTES):  # a minute at a time, out of order inside it (by up to 20 s: within grace)
            times = sorted(rng.uniform(0, 59) for _ in range(30))
            order = sorted(range(len(times)), key=lambda i: times[i] + rng.uniform(-20, 20))
            for i in order:
                at = began + timedelta(minutes=minute, seconds=times[i])
                capture(EVENTS[i % 2], f"user-{rng.randrange(7)}", at, float(i % 5))
            client.flush()
            await wait_for_count(stack, f"SELECT count() FROM {table}", sent, logs=[worker.log])
            if killed and minute == 1:  # the windows are busy with minute 1's events now
                worker.stop(signal.SIGKILL)
                worker = start_worker(pipeline)
        # minute 0 closed long ago for both keys (their watermarks are past 3:00): late, counted, never added
        capture("$pageview", "user-late", began + timedelta(seconds=5), 100.0)
        client.flush()
        await wait_for_count(stack, f"SELECT count() FROM {table}", sent, logs=[worker.log])
        for event in EVENTS:  # move both keys' watermarks past every minute above
            capture(event, "user-closer", began + timedelta(minutes=10), 0.0)
        client.flush()
    finally:
        client.shutdown()

    results_topic = doc["windows"][-1]["output"]

    def emitted() -> list[dict[str, Any]]:
        return [result(m.value() or b"") for m in messages(stack.kafka, results_topic, 1, timeout=30)]

    wanted = {(event, minute) for event in EVENTS for minute in range(MINUTES)}

    def starts(results: list[dict[str, Any]]) -> set[tuple[str, int]]:
        return {(r["key"]["event"], (r["start"] - int(began.timestamp() * 1e6)) // 60_000_000) for r in results}

    wait_until(lambda: wanted <= starts(emitted()), 90, lambda: f"windows emitted: {sorted(starts(emitted()))}",
               interval=0.5, logs=[worker.log])
    results = emitted()
    values: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        values.setdefault((r["key"]["event"], r["start"]), []).append(r["values"])
    if killed:  # a window sent just before the kill may be sent again: with the same values
        assert all(v == vs[0] for vs in values.values() for v in vs), values
    else:
        assert max(len(vs) for vs in values.values()) == 1  # each once

    late_topic = doc["windows"][-1]["late_topic"]
    late = [orjson.loads(m.value() or b"null") for m in messages(stack.kafka, late_topic, 1, timeout=30)]
    late_uuids = {r["uuid"] for r in late}
    rows = await select(stack, f"SELECT toString(uuid) FROM {table} AND distinct_id = 'user-late'")
    assert rows.rows[0][0] in late_uuids  # the deliberately late event, at least
    counted = ", ".join(f"'{u}'" for u in late_uuids)
    grouped = await select(stack, f"""
        SELECT event, toUnixTimestamp(toStartOfMinute(timestamp)) * 1000000, count(), uniqExact(distinct_id),
               sum(toFloat64OrZero(JSONExtractRaw(properties, 'price')))
        FROM {table} AND distinct_id != 'user-closer' AND toString(uuid) NOT IN ({counted})
        GROUP BY event, toStartOfMinute(timestamp)""")
    expected = {(event, start): {"events": n, "users": users, "revenue": revenue}
                for event, start, n, users, revenue in grouped.rows}
    got = {(r["key"]["event"], r["start"]): r["values"] for r in results if (r["key"]["event"], r["start"]) in expected}
    assert got == expected
    assert len(expected) == len(wanted)
    assert {r["key"]["team_id"] for r in results} == {str(project.id)}

    if not killed:  # a killed worker's counters died with it
        metrics = scrape(f"{worker.url}/metrics")
        assert metrics.value("headwater_window_late_events_total", window="per_minute") == len(late)

    # the default window, into ClickHouse: event_rollups equals a GROUP BY over events FINAL
    before_closers = int(began.timestamp()) * 1_000_000 + MINUTES * 60_000_000
    where = f"team_id = {project.id} AND window_start < fromUnixTimestamp64Micro({before_closers}, 'UTC')"
    rollups = f"""SELECT event, toUnixTimestamp64Micro(window_start), events, unique_distinct_ids
                  FROM event_rollups FINAL WHERE {where}"""
    grouped = await select(stack, f"""
        SELECT event, toUnixTimestamp(toStartOfMinute(timestamp)) * 1000000, count(), uniqExact(distinct_id)
        FROM {table} AND distinct_id NOT IN ('user-closer', 'user-late') AND toString(uuid) NOT IN ({counted})
        GROUP BY event, toStartOfMinute(timestamp)""")
    await wait_for_count(stack, f"SELECT count() FROM event_rollups FINAL WHERE {where}", len(wanted),
                         logs=[worker.log])
    assert sorted(map(tuple, (await select(stack, rollups)).rows)) == sorted(map(tuple, grouped.rows))
