"""The local stack for a test session or a bench run: reused where it runs, stopped only where started.

``cluster_stack``: a stack of its own whose Kafka is a cluster of several brokers (the scale-out test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from headwater.migrate import migrate_clickhouse, migrate_postgres
from headwater.runtime.settings import Endpoints, Settings
from headwater.stack import manager
from headwater.stack.endpoints import resolve_endpoints
from headwater.stack.process import pick_port
from tests.support import ROOT
from tests.support.processes import stack_env


def running_services(settings: Settings) -> set[str]:
    """The services that run (or are configured elsewhere) now."""
    return {s.name for s in manager.status(settings) if s.state in {"running", "external"}}


@contextlib.contextmanager
def local_stack(settings: Settings, progress: Callable[[str], None] = lambda _: None,
                keep: bool = False) -> Iterator[Endpoints]:
    """Start what is not running, migrate Postgres and ClickHouse, yield the endpoints; at the end
    stop only the services started here (none with ``keep``). Kafka topics are each run's own."""
    before = running_services(settings)
    progress(f"local stack: already running {sorted(before) or 'nothing'}")
    started = {s.name for s in manager.SERVICES} - before
    try:
        manager.up(settings, progress)
        endpoints = resolve_endpoints(settings)
        migrate_postgres(endpoints.postgres, lambda _: None)
        asyncio.run(migrate_clickhouse(endpoints.clickhouse, lambda _: None))
        yield endpoints
    finally:
        if started and not keep:
            progress(f"stopping what this run started: {', '.join(sorted(started))}")
            manager.down(settings, only=started)


class ClusterStack:
    """``headwater`` commands with a state dir of their own, whose stack runs Kafka as a cluster of
    ``brokers`` and takes Postgres, Redis and ClickHouse from ``endpoints`` (the session's stack)."""

    def __init__(self, endpoints: Endpoints, state_dir: Path, topology: Path, brokers: int) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_") or k == "HEADWATER_CACHE_DIR"}
        given = {k: v for k, v in stack_env(endpoints).items() if k != "HEADWATER_KAFKA_BOOTSTRAP"}
        self.state_dir = state_dir
        self.brokers = brokers
        self.env = {**base, **given, "HEADWATER_STATE_DIR": str(state_dir), "HEADWATER_TOPOLOGY": str(topology),
                    "HEADWATER_KAFKA_BROKERS": str(brokers), "HEADWATER_GATEWAY_PORT": str(pick_port(0)),
                    "HEADWATER_WORKER_WEB_PORT": str(pick_port(0)), "COLUMNS": "1000",
                    "PYTHONFAULTHANDLER": "1"}  # a crash in a native library leaves a traceback

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "headwater.cli", *args], check=False, env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)

    def checked(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = self(*args, timeout=timeout)
        assert result.returncode == 0, (f"headwater {' '.join(args)} exited with {result.returncode}:\n"
                                        f"{result.stderr}\n{result.stdout}")
        return result

    def status(self) -> dict[str, dict[str, Any]]:
        """``status --json``'s services by name."""
        return {s["name"]: s for s in json.loads(self.checked("status", "--json").stdout)["services"]}


@contextlib.contextmanager
def cluster_stack(endpoints: Endpoints, state_dir: Path, topology: Path, brokers: int = 3,
                  progress: Callable[[str], None] = lambda _: None) -> Iterator[tuple[ClusterStack, float]]:
    """``headwater up --kafka-brokers N`` in ``state_dir``; yield the commands and how long ``up`` took;
    ``headwater down`` at the end, whatever happened."""
    cli = ClusterStack(endpoints, state_dir, topology, brokers)
    started = time.monotonic()
    try:
        cli.checked("up", "--kafka-brokers", str(brokers), timeout=240)
        took = time.monotonic() - started
        progress(f"{brokers}-broker stack up in {took:.1f}s")
        yield cli, took
    finally:
        stopping = time.monotonic()
        cli("down", timeout=180)
        progress(f"{brokers}-broker stack down in {time.monotonic() - stopping:.1f}s")
