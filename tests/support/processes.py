"""Child processes with their own environment and log file: the gateway, the worker, bench servers.

A ``Process`` runs a command from the repository root with ``os.environ`` plus its own
variables, stdout and stderr in one log file, optionally pinned to a CPU with ``taskset``.
``start_gateway`` and ``start_worker`` run ``headwater gateway`` and ``headwater worker``
against the local stack's endpoints and an (isolated) topology, each on a port of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from headwater.runtime.settings import Endpoints
from headwater.stack.process import pick_port
from tests.support import ROOT
from tests.support.logs import tail
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until

PYTHON = sys.executable


def headwater_command(*args: str, python: Sequence[str] = ()) -> list[str]:
    """``python -m headwater.cli ARGS``; ``python``: interpreter options before ``-m`` (a profiler)."""
    return [PYTHON, *python, "-m", "headwater.cli", *args]


def stack_env(endpoints: Endpoints) -> dict[str, str]:
    """The variables that point a ``headwater`` command at ``endpoints``."""
    return {
        "HEADWATER_KAFKA_BOOTSTRAP": endpoints.kafka,
        "HEADWATER_POSTGRES_DSN": endpoints.postgres,
        "HEADWATER_REDIS_URL": endpoints.redis,
        "HEADWATER_CLICKHOUSE_URL": endpoints.clickhouse,
    }


@dataclass
class Process:
    """A command running as a child process; see the module docstring."""

    name: str
    command: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # on top of os.environ
    url: str = ""  # where it serves HTTP, if it does
    cpu: int | None = None  # pinned to this CPU with taskset
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*pin, *self.command], env={**os.environ, **self.env}, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def exit_code(self) -> int | None:
        """None while it runs."""
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout``); the exit code."""
        assert self.proc is not None, f"{self.name} was not started"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)

    def wait_http(self, path: str, timeout: float = 30) -> None:
        """Wait until ``GET url + path`` answers 200 (fails at once if the process exits)."""

        def answers() -> bool:
            return httpx.get(self.url + path, timeout=2).status_code == 200

        wait_until(answers, timeout, f"{self.name} did not answer 200 on {self.url}{path}", logs=[self],
                   ignore=(httpx.HTTPError,))


@dataclass
class Gateway:
    url: str
    process: Process


def start_gateway(endpoints: Endpoints, topology: Path, log_dir: Path, env: Mapping[str, str] | None = None, *,
                  log: Path | None = None, ready: str = "/_liveness", python: Sequence[str] = (),
                  cpu: int | None = None, timeout: float = 30) -> Gateway:
    """``headwater gateway`` on a free port, answering on ``ready``; ``python``: see ``headwater_command``."""
    port = pick_port(0)
    environment = {**stack_env(endpoints), "HEADWATER_TOPOLOGY": str(topology), "HEADWATER_GATEWAY_PORT": str(port),
                   **(env or {})}
    url = f"http://127.0.0.1:{port}"
    process = Process("gateway", headwater_command("gateway", "--port", str(port), python=python),
                      log or log_dir / f"gateway-{port}.log", environment, url=url, cpu=cpu).start()
    try:
        process.wait_http(ready, timeout)
    except BaseException:
        process.stop()
        raise
    return Gateway(url, process)


def start_worker(endpoints: Endpoints, topology: Path, log_dir: Path, env: Mapping[str, str] | None = None, *,
                 state_dir: Path | None = None) -> Process:
    """``headwater worker --loglevel info`` with its web port (``/metrics``) free; returns once spawned.

    It then joins its consumer group (the topology's ``app_id``) on its own time: wait for what
    the test needs (``tests.support.kafka.assigned``, a count in ClickHouse).
    """
    port = pick_port(0)
    environment = {**stack_env(endpoints), "HEADWATER_TOPOLOGY": str(topology), "HEADWATER_WORKER_WEB_PORT": str(port),
                   "HEADWATER_STATE_DIR": str(state_dir or log_dir / "state"), **(env or {})}
    return Process("worker", headwater_command("worker", "--loglevel", "info"), log_dir / f"worker-{port}.log",
                   environment, url=f"http://127.0.0.1:{port}").start()


class StartGateway(Protocol):
    """The ``start_gateway`` fixture: a gateway for ``pipeline``, with extra variables."""

    def __call__(self, pipeline: Pipeline, /, **env: str) -> Gateway: ...


class StartWorker(Protocol):
    """The ``start_worker`` fixture: a worker for ``pipeline``, with extra variables."""

    def __call__(self, pipeline: Pipeline, /, **env: str) -> Process: ...
