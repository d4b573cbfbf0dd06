"""A throwaway ClickHouse server process for tests: Debian's ``clickhouse-server`` (18.16).

``clickhouse_server(directory)`` writes a config of its own under ``directory`` (data, logs,
users), picks free loopback ports for the native protocol and HTTP, starts the server as a
child process (no init system), waits until both ports answer, and stops it at the end. The
installed package's own config and its service are left alone. Its config names a one-node
cluster (``CLUSTER``) so that writes through a ``Distributed`` table can be tried.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

BINARY = "clickhouse-server"
CLUSTER = "headwater_one_node"
"""A cluster of this server alone (``remote_servers``): a Distributed table works over it; replicated tables and
``ON CLUSTER`` need ZooKeeper, which the server has not."""

_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/log/clickhouse-server.log</log>
        <errorlog>{dir}/log/clickhouse-server.err.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{native_port}</tcp_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>20</max_concurrent_queries>
    <mlock_executable>false</mlock_executable>
    <remote_servers>
        <{cluster}>
            <shard><replica><host>127.0.0.1</host><port>{native_port}</port></replica></shard>
        </{cluster}>
    </remote_servers>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
"""


@dataclass(frozen=True)
class ClickHouseServer:
    native_port: int
    http_port: int
    directory: Path
    pid: int

    @property
    def native_url(self) -> str:
        return f"clickhouse://127.0.0.1:{self.native_port}/default"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/default"

    @property
    def log(self) -> Path:
        return self.directory / "log" / "clickhouse-server.err.log"


def installed() -> bool:
    return shutil.which(BINARY) is not None or Path("/usr/sbin", BINARY).exists()


def _binary() -> str:
    return shutil.which(BINARY) or str(Path("/usr/sbin", BINARY))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(http_port: int, native_port: int) -> bool:
    try:
        if httpx.get(f"http://127.0.0.1:{http_port}/ping", timeout=1.0).text.strip() != "Ok.":
            return False
        with socket.create_connection(("127.0.0.1", native_port), timeout=1.0):
            return True
    except (httpx.HTTPError, OSError):
        return False


@contextlib.contextmanager
def clickhouse_server(directory: Path, timeout: float = 60.0) -> Iterator[ClickHouseServer]:
    """A server of its own in ``directory``, running until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "tmp", "user_files", "log"):
        (directory / sub).mkdir(exist_ok=True)
    native_port, http_port = _free_port(), _free_port()
    config = directory / "config.xml"
    config.write_text(_CONFIG.format(dir=directory, http_port=http_port, native_port=native_port,
                                      cluster=CLUSTER))
    (directory / "users.xml").write_text(_USERS)
    out = (directory / "log" / "stdout.log").open("wb")
    process = subprocess.Popen([_binary(), f"--config-file={config}"], cwd=directory, stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = ClickHouseServer(native_port, http_port, directory, process.pid)
    try:
        deadline = time.monotonic() + timeout
        while not _answers(http_port, native_port):
            if process.poll() is not None:
                raise RuntimeError(f"clickhouse-server exited with {process.returncode}; see {server.log} and "
                                   f"{directory / 'log' / 'stdout.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"clickhouse-server did not answer within {timeout:.0f}s; see {server.log}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        out.close()
