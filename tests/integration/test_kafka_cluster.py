"""A three-broker local stack: replicated topics, two gateways and two workers, and a broker killed mid-load.

The stack has a state dir of its own (``cluster_stack``: ``headwater up --kafka-brokers 3``)
and borrows Postgres, Redis and ClickHouse from the session's stack. Every event the posthog
SDK saw acknowledged (a 200) must land once in ClickHouse, though a broker died meanwhile.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import load_topology
from tests.support import DEFAULT_TOPOLOGY
from tests.support.clickhouse import select, wait_for_count
from tests.support.stack import ClusterStack, cluster_stack
from tests.support.waiting import wait_until

BROKERS = 3


@pytest.fixture
def cluster(stack: Endpoints, tmp_path: Path) -> Iterator[ClusterStack]:
    """A 3-broker stack for this test alone, migrated; stopped (`headwater down`) after it."""
    with cluster_stack(stack, tmp_path / "state", DEFAULT_TOPOLOGY, BROKERS, progress=print) as (cli, _took):
        cli.checked("migrate")
        yield cli


def _describe(bootstrap: str) -> tuple[dict[str, int], dict[str, str]]:
    """Each pipeline topic's smallest replica count and its min.insync.replicas."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = list(load_topology(DEFAULT_TOPOLOGY).kafka_topics())
    topics = admin.list_topics(timeout=10).topics
    replicas = {n: min(len(p.replicas) for p in topics[n].partitions.values()) for n in names}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names], request_timeout=10)
    min_isr = {resource.name: future.result()["min.insync.replicas"].value for resource, future in futures.items()}
    return replicas, min_isr


async def test_a_broker_dies_under_load_and_every_acknowledged_event_lands_once(
    stack: Endpoints, cluster: ClusterStack, project: Project
) -> None:
    kafka = cluster.status()["kafka"]
    assert kafka["state"] == "running"
    members = kafka["members"]
    assert [m["name"] for m in members] == ["kafka-1", "kafka-2", "kafka-3"]
    assert kafka["url"] == ",".join(m["url"] for m in members)
    replicas, min_isr = _describe(kafka["url"])
    assert set(replicas.values()) == {3}, replicas
    assert set(min_isr.values()) == {"2"}, min_isr

    cli = cluster
    cli.checked("run", "--detach", "--workers", "2", "--gateways", "2", "--no-ops")
    apps = cli.status()
    assert all(apps[n]["state"] == "running" for n in ("gateway-1", "gateway-2")), apps
    assert "gateway" not in apps
    assert "worker" not in apps
    gateways = [apps["gateway-1"]["url"], apps["gateway-2"]["url"]]
    logs = [Path(apps[n]["log"]) for n in ("gateway-1", "gateway-2", "worker-1", "worker-2")]

    acked: set[str] = set()
    failed: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()
    latencies: dict[bool, list[float]] = {False: [], True: []}  # seconds per request, before and after the kill

    def send(gateway: str, count: int) -> None:
        client = Posthog(project.api_token, host=gateway, sync_mode=True, max_retries=0, timeout=20)
        for i in range(count):
            event_uuid = str(uuid.uuid4())
            # In sync mode the SDK posts each event and returns its uuid only once the gateway answered
            # 200; any other answer (or none) it logs and returns None.
            after = killed.is_set()
            asked = time.monotonic()
            answered = client.capture("$pageview", distinct_id=f"user-{i % 11}", uuid=event_uuid,
                                      properties={"i": i, "after_the_kill": after})
            with lock:
                latencies[after].append(time.monotonic() - asked)
                if answered is None:
                    failed.append(f"{gateway}: event {i} ({'after' if killed.is_set() else 'before'} the kill)")
                else:
                    acked.add(event_uuid)

    per_gateway = 400
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(gateways)) as pool:
        futures = [pool.submit(send, g, per_gateway) for g in gateways]
        wait_until(lambda: len(acked) >= per_gateway // 2 or any(f.done() for f in futures), 60,
                   "the gateways did not acknowledge the first events", logs=logs)
        victim = members[0]  # the first broker of the bootstrap list (and a controller)
        os.kill(victim["pid"], signal.SIGKILL)
        killed.set()
        killed_after = len(acked)
        for future in futures:
            future.result(timeout=120)
    took = time.monotonic() - started
    print(f"sent {len(acked)} events through 2 gateways in {took:.1f}s; {victim['name']} killed after {killed_after}; "
          + "; ".join(f"{when}: median {sorted(ls)[len(ls) // 2] * 1000:.0f} ms, slowest {max(ls) * 1000:.0f} ms"
                      for when, ls in (("before", latencies[False]), ("after", latencies[True])) if ls))
    assert not failed, f"{len(failed)} request(s) failed after {victim['name']} died: {failed[:5]}"
    assert len(acked) == 2 * per_gateway
    assert killed_after < len(acked)  # some load came after the kill

    after = cli.status()["kafka"]
    assert after["state"] == "unhealthy"
    assert [(m["name"], m["state"]) for m in after["members"]] == [
        ("kafka-1", "stopped"), ("kafka-2", "running"), ("kafka-3", "running")]

    table = f"events FINAL WHERE team_id = {project.id}"
    landed_count = await wait_for_count(stack, f"SELECT count() FROM {table}", len(acked), timeout=90, logs=logs)
    rows = (await select(stack, f"SELECT toString(uuid) FROM {table}")).rows
    landed = [row[0] for row in rows]
    assert landed_count == len(acked)
    assert len(landed) == len(set(landed)) == len(acked)
    assert set(landed) == acked

    restarted = time.monotonic()
    cli.checked("up")  # starts again the broker that died, on its own port
    kafka = cli.status()["kafka"]
    print(f"{victim['name']} restarted in {time.monotonic() - restarted:.1f}s")
    assert kafka["state"] == "running"
    assert [m["url"] for m in kafka["members"]] == [m["url"] for m in members]

