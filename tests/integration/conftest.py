"""Integration fixtures: the real local stack, isolated topics, and gateway/worker processes.

The stack is started once per session (or reused when ``headwater up`` already runs it) and
only what this session started is stopped. Every test gets its own topics and consumer group,
so tests do not see each other's events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from headwater.migrate import migrate_clickhouse, migrate_kafka, migrate_postgres
from headwater.runtime.projects import Project, create_project
from headwater.runtime.settings import Endpoints, Settings
from headwater.runtime.topology import Topology, load_topology
from headwater.stack import manager
from headwater.stack.endpoints import resolve_endpoints
from headwater.stack.process import pick_port
from schemas.serializer import AvroSerializer
from sinks.clickhouse.client import QueryResult
from sinks.clickhouse.client import connect as clickhouse_connect
from tests.conftest import ROOT, isolated_topology, write_yaml

RAW: AvroSerializer[dict[str, list[dict[str, Any]]]] = AvroSerializer("raw_envelope")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(state_dir=ROOT / ".headwater", topology=ROOT / "topology.yaml")


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Endpoints]:
    """The local stack's endpoints; starts the services that are not running, stops only those."""
    before = {s.name for s in manager.status(settings) if s.state in {"running", "external"}}
    manager.up(settings)
    endpoints = resolve_endpoints(settings)
    migrate_postgres(endpoints.postgres, lambda _: None)
    asyncio.run(migrate_clickhouse(endpoints.clickhouse, lambda _: None))
    yield endpoints
    started = {s.name for s in manager.SERVICES} - before
    if started:
        manager.down(settings, only=started)


@dataclass
class Pipeline:
    """An isolated topology: its own topics and consumer group, migrated."""

    path: Path
    topology: Topology


@pytest.fixture
def pipeline(stack: Endpoints, tmp_path: Path) -> Pipeline:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    path = write_yaml(tmp_path / "topology.yaml", isolated_topology(prefix))
    topology = load_topology(path)
    migrate_kafka(stack.kafka, topology, lambda _: None)
    return Pipeline(path, topology)


@pytest.fixture
async def project(stack: Endpoints) -> Project:
    return await create_project(stack.postgres, "test", f"phc_test_{uuid.uuid4().hex}")


def stack_env(endpoints: Endpoints) -> dict[str, str]:
    return {
        "HEADWATER_KAFKA_BOOTSTRAP": endpoints.kafka,
        "HEADWATER_POSTGRES_DSN": endpoints.postgres,
        "HEADWATER_REDIS_URL": endpoints.redis,
        "HEADWATER_CLICKHOUSE_URL": endpoints.clickhouse,
    }


@dataclass
class Process:
    """A ``headwater`` subcommand running as a child process."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "headwater.cli", *self.args],
                env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@dataclass
class Gateway:
    url: str
    process: Process


class StartGateway(Protocol):
    """``start_gateway(pipeline, **env)``: a gateway process for ``pipeline``, answering."""

    def __call__(self, pipeline: Pipeline, **env: str) -> Gateway: ...


class StartWorker(Protocol):
    """``start_worker(pipeline, **env)``: a worker process for ``pipeline``."""

    def __call__(self, pipeline: Pipeline, **env: str) -> Process: ...


@pytest.fixture
def start_gateway(stack: Endpoints, processes: list[Process], tmp_path: Path) -> StartGateway:
    def start(pipeline: Pipeline, **env: str) -> Gateway:
        port = pick_port(0)
        environment = {**stack_env(stack), "HEADWATER_TOPOLOGY": str(pipeline.path),
                       "HEADWATER_GATEWAY_PORT": str(port), **env}
        process = Process("gateway", ["gateway"], environment, tmp_path / f"gateway-{port}.log").start()
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.proc is not None
            if process.proc.poll() is not None:
                pytest.fail(f"gateway exited:\n{process.tail()}")
            try:
                if httpx.get(f"{url}/_liveness", timeout=1).status_code == 200:
                    return Gateway(url, process)
            except httpx.HTTPError:
                time.sleep(0.1)
        pytest.fail(f"gateway did not start:\n{process.tail()}")

    return start


@pytest.fixture
def start_worker(stack: Endpoints, processes: list[Process], tmp_path: Path) -> StartWorker:
    def start(pipeline: Pipeline, **env: str) -> Process:
        port = pick_port(0)
        environment = {**stack_env(stack), "HEADWATER_TOPOLOGY": str(pipeline.path),
                       "HEADWATER_WORKER_WEB_PORT": str(port), "HEADWATER_STATE_DIR": str(tmp_path / "state"), **env}
        process = Process("worker", ["worker", "--loglevel", "info"], environment,
                          tmp_path / f"worker-{port}.log").start()
        processes.append(process)
        return process

    return start


async def select(endpoints: Endpoints, sql: str) -> QueryResult:
    client = clickhouse_connect(endpoints.clickhouse)
    try:
        return await client.select(sql)
    finally:
        await client.aclose()


async def wait_for_count(endpoints: Endpoints, sql: str, expected: int, timeout: float = 60.0) -> int:
    """Poll ``sql`` (one number) until it reaches ``expected``; return the last value."""
    deadline = time.monotonic() + timeout
    value = -1
    while time.monotonic() < deadline:
        value = int((await select(endpoints, sql)).rows[0][0])
        if value >= expected:
            return value
        await asyncio.sleep(0.5)
    return value


@dataclass(frozen=True)
class KafkaRecord:
    """One message of a capture topic, its envelope decoded."""

    partition: int
    key: bytes | None
    headers: dict[str, bytes]
    events: list[dict[str, Any]]


def read_topic(bootstrap: str, topic: str, partitions: int) -> list[KafkaRecord]:
    """Every message of ``topic`` from the beginning to the high watermark, envelopes decoded."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}", "log_level": 0,
                         "enable.auto.commit": False})
    records: list[KafkaRecord] = []
    try:
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high == low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            seen = low
            while seen < high:
                message = consumer.poll(10)
                assert message is not None, f"partition {p}: nothing after offset {seen} of {high}"
                assert message.error() is None, message.error()
                received = message.headers() or []  # a consumer gets a list of (name, value) pairs
                pairs = received.items() if isinstance(received, dict) else received
                headers = {name: value for name, value in pairs if isinstance(value, bytes)}
                value, offset = message.value(), message.offset()
                assert value is not None
                assert offset is not None
                records.append(KafkaRecord(p, message.key(), headers, RAW.decode(value)["events"]))
                seen = offset + 1
        return records
    finally:
        consumer.close()


def read_uuids(bootstrap: str, topic: str, partitions: int) -> list[str]:
    """Every event uuid in ``topic``'s envelopes."""
    return [e["uuid"] for record in read_topic(bootstrap, topic, partitions) for e in record.events]
