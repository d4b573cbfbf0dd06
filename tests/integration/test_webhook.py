"""The webhook sink end to end: the real posthog SDK → gateway → worker → a local receiver that
verifies every signature; an outage is retried, a receiver that stays down gets its destination
paused and its batches dead-lettered, and ``headwater dlq replay`` delivers them once it is back."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.support import ROOT
from tests.support.metrics import scrape
from tests.support.processes import Process, StartGateway, StartWorker, headwater_command, stack_env
from tests.support.receiver import Receiver, receiving
from tests.support.topology import Pipeline, fresh_prefix, isolated_pipeline, isolated_topology
from tests.support.waiting import wait_until

SECRET = "integration-secret"
PAUSE_AFTER = 8.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(SECRET.encode()) as r:
        yield r


def _topology(receiver: Receiver) -> dict[str, Any]:
    doc = isolated_topology(fresh_prefix("h"))
    doc["sinks"].append({
        "name": "hook", "type": "webhook", "source": doc["pipeline"]["output"],
        "batch": {"max_events": 200, "max_seconds": 0.2},
        "config": {"url": receiver.url, "secret_env": "HOOK_SECRET", "max_batch_records": 25,
                   "pause_after_seconds": PAUSE_AFTER, "probe_seconds": 600,
                   "filter": {"events": ["purchase"]}},
    })
    return doc


def _cli(stack: Endpoints, pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack_env(stack), "HEADWATER_TOPOLOGY": str(pipeline.path), "HOOK_SECRET": SECRET}
    return subprocess.run(headwater_command(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=False)


def _metric(worker: Process, name: str) -> float:
    return scrape(f"{worker.url}/metrics").value(name, sink="hook") or 0.0


def _letters(stack: Endpoints, pipeline: Pipeline) -> list[dict[str, Any]]:
    listed = _cli(stack, pipeline, "dlq", "list", "--json", "--limit", "1000", "--filter", "stage=sink:hook")
    assert listed.returncode == 0, listed.stderr
    letters: list[dict[str, Any]] = json.loads(listed.stdout)
    return letters


async def test_every_batch_reaches_the_receiver_signed_across_outages_and_a_pause_is_replayed(
        stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
        receiver: Receiver, tmp_path: Path) -> None:
    pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", _topology(receiver))
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline, HOOK_SECRET=SECRET)
    client = Posthog(project.api_token, host=gateway.url, flush_at=20, max_retries=0)
    sent: list[str] = []

    def send(count: int, tag: str) -> None:
        for n in range(count):
            for event in ("purchase", "$pageview"):  # the filter takes purchases only
                uuid = client.capture(event, distinct_id=f"{tag}-{n % 5}", properties={"n": n, "phase": tag})
                assert uuid is not None
                if event == "purchase":
                    sent.append(uuid)
        client.flush()

    def arrived() -> set[str]:
        return set(receiver.uuids())

    try:
        send(40, "steady")
        wait_until(lambda: set(sent) <= arrived(), 90, lambda: f"{len(arrived())}/{len(sent)} delivered",
                   interval=0.3, logs=[worker.log])

        # an outage shorter than pause_after_seconds: refused connections, then 503s, all retried
        receiver.down()
        send(30, "outage")
        wait_until(lambda: _metric(worker, "headwater_sink_retries_total") >= 2, 60, "no retries counted",
                   interval=0.2, logs=[worker.log])
        receiver.fail_next(503, 503)
        receiver.up()
        wait_until(lambda: set(sent) <= arrived(), 90, lambda: f"{len(arrived())}/{len(sent)} delivered",
                   interval=0.3, logs=[worker.log])
        assert _metric(worker, "headwater_webhook_paused") == 0

        # a receiver that stays down: paused after PAUSE_AFTER seconds, its batches dead-lettered
        receiver.down()
        held_from = len(sent)
        send(30, "down")
        held = set(sent[held_from:])

        def dead_lettered() -> int:
            """Events in the paused destination's letters (a letter holds a whole envelope, pageviews too)."""
            return sum(int(letter["events"]) for letter in _letters(stack, pipeline)
                       if letter["reason"] == "destination_paused")

        wait_until(lambda: _metric(worker, "headwater_webhook_paused") == 1, PAUSE_AFTER + 60, "never paused",
                   interval=0.3, logs=[worker.log])
        wait_until(lambda: dead_lettered() >= 2 * len(held), 60,
                   lambda: f"{dead_lettered()}/{2 * len(held)} events dead-lettered", interval=0.5, logs=[worker.log])
        assert not held & arrived()

        failing = _cli(stack, pipeline, "dlq", "replay", "--filter", "stage=sink:hook")
        assert failing.returncode == 1, failing.stderr  # still down: nothing recorded as replayed
        assert "still failing" in failing.stderr
        assert all(letter["replayed_at"] is None for letter in _letters(stack, pipeline))

        receiver.up()
        replayed = _cli(stack, pipeline, "dlq", "replay", "--filter", "stage=sink:hook")
        assert replayed.returncode == 0, replayed.stderr
        assert held <= arrived(), f"{len(held - arrived())} of the held events missing after the replay"
        assert all(letter["replayed_at"] for letter in _letters(stack, pipeline))
    finally:
        client.shutdown()

    assert set(sent) <= arrived()
    assert arrived() <= set(sent)  # only purchases: the filter held
    assert receiver.bad_signatures == 0
    assert all(d.body["destination"] == "hook" for d in receiver.deliveries)
