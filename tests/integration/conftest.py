"""Integration fixtures: the real local stack, isolated topics, and gateway/worker processes.

The stack is started once per session (or reused when ``headwater up`` already runs it) and
only what this session started is stopped. Every test gets its own topics and consumer group,
so tests do not see each other's events. The helpers are ``tests.support``'s; the names
re-exported below are for tests that still import them from here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.migrate import migrate_clickhouse
from headwater.runtime.projects import Project, create_project
from headwater.runtime.settings import Endpoints, Settings
from tests.support import DEFAULT_TOPOLOGY, ROOT
from tests.support import clickhouse_server as server_process
from tests.support import processes as spawn
from tests.support.clickhouse import select, wait_for_count
from tests.support.kafka import KafkaRecord, read_topic, read_uuids
from tests.support.processes import Gateway, Process, StartGateway, StartWorker, stack_env
from tests.support.stack import local_stack
from tests.support.topology import Pipeline, isolated_pipeline

__all__ = ["Gateway", "KafkaRecord", "Pipeline", "Process", "StartGateway", "StartWorker", "read_topic", "read_uuids",
           "select", "stack_env", "wait_for_count"]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(state_dir=ROOT / ".headwater", topology=DEFAULT_TOPOLOGY)


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Endpoints]:
    """The local stack's endpoints; starts the services that are not running, stops only those."""
    with local_stack(settings) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server_process.ClickHouseServer]:
    """A ClickHouse 18.16 server of this session's own (Debian's package), migrated over the native protocol;
    started only for the tests that ask for it, stopped at the end."""
    if not server_process.installed():
        pytest.skip("clickhouse-server is not installed (make setup installs Debian's clickhouse-server)")
    with server_process.clickhouse_server(tmp_path_factory.mktemp("clickhouse-server")) as server:
        asyncio.run(migrate_clickhouse(server.native_url, lambda _: None))
        yield server


@pytest.fixture
def pipeline(stack: Endpoints, tmp_path: Path) -> Pipeline:
    """The default topology under a fresh prefix: its own topics (created) and consumer group."""
    return isolated_pipeline(stack.kafka, tmp_path / "topology.yaml")


@pytest.fixture
async def project(stack: Endpoints) -> Project:
    suffix = uuid.uuid4().hex
    return await create_project(stack.postgres, f"test-{suffix[:12]}", f"phc_test_{suffix}")


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """What a test started; stopped after it."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def start_gateway(stack: Endpoints, processes: list[Process], tmp_path: Path) -> StartGateway:
    def start(pipeline: Pipeline, /, **env: str) -> Gateway:
        gateway = spawn.start_gateway(stack, pipeline.path, tmp_path, env)
        processes.append(gateway.process)
        return gateway

    return start


@pytest.fixture
def start_worker(stack: Endpoints, processes: list[Process], tmp_path: Path) -> StartWorker:
    def start(pipeline: Pipeline, /, **env: str) -> Process:
        worker = spawn.start_worker(stack, pipeline.path, tmp_path, env)
        processes.append(worker)
        return worker

    return start
