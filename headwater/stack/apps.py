"""Gateway, worker and the ops page as background processes of the local stack (``headwater run --detach``).

They are recorded in the stack state beside the services, so ``headwater status`` shows them
(``exited``, with how and the end of the log, once one has stopped on its own) and
``headwater down`` stops them (first, so the worker commits before Kafka goes away). Each runs
under ``headwater.stack.supervise``, which records its exit. The record keeps a digest of the
topology file it started with, so ``run --detach`` can say when the file changed since.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import httpx

from headwater.runtime.settings import Settings
from headwater.stack.process import pick_port, pid_alive, spawn, tail, terminate, wait_until
from headwater.stack.state import ServiceRecord, read_state, write_state

APPS = ("gateway", "worker", "ops")  # started in this order: the ops page reads the worker's port


def topology_digest(path: Path) -> str:
    """The sha256 of the topology file's content ("missing" if there is none)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def exit_file(record: ServiceRecord) -> Path:
    return record.log_path.with_suffix(".exit.json")


def running_apps(settings: Settings) -> dict[str, ServiceRecord]:
    """The detached apps whose process is alive."""
    return {name: r for name, r in read_state(settings.stack_file).items() if name in APPS and pid_alive(r.pid)}


def stale_topology(settings: Settings) -> list[str]:
    """The running apps that started with another topology file, or another content of it."""
    path, digest = str(settings.topology.resolve()), topology_digest(settings.topology)
    return [name for name, r in running_apps(settings).items()
            if (r.topology, r.topology_digest) != (path, digest)]


def start_apps(settings: Settings, names: Sequence[str] = APPS) -> dict[str, ServiceRecord]:
    """Start the apps ``names`` (of ``APPS``: gateway, worker, the ops page) detached, unless already
    running; return their records."""
    records = read_state(settings.stack_file)
    logs = settings.state_dir / "logs"
    started: dict[str, ServiceRecord] = {}
    for name in [a for a in APPS if a in names]:
        record = records.get(name)
        if record is not None and pid_alive(record.pid):
            started[name] = record
            continue
        if name == "gateway":
            port = pick_port(settings.gateway_port)
            env = {"HEADWATER_GATEWAY_PORT": str(port)}
            url = f"http://{settings.gateway_host}:{port}"
        elif name == "worker":
            port = pick_port(settings.worker_web_port)
            env = {"HEADWATER_WORKER_WEB_PORT": str(port)}
            url = f"http://127.0.0.1:{port}"
        else:  # the ops page scrapes the worker started beside it
            port = pick_port(settings.ops_port)
            env = {"HEADWATER_OPS_PORT": str(port)}
            worker = records.get("worker")
            if worker is not None:
                env["HEADWATER_WORKER_WEB_PORT"] = str(worker.port)
            url = f"http://{settings.ops_host}:{port}"
        topology = settings.topology.resolve()
        env["HEADWATER_TOPOLOGY"] = str(topology)
        log = logs / f"{name}.log"
        new = ServiceRecord(name, 0, port, url, str(log), str(topology), topology_digest(topology))
        exit_file(new).unlink(missing_ok=True)
        app = [sys.executable, "-m", "headwater.cli", name]
        pid = spawn([sys.executable, "-m", "headwater.stack.supervise", str(exit_file(new)), "--", *app], log, env=env)
        started[name] = records[name] = replace(new, pid=pid)
        write_state(settings.stack_file, records)
    for name in ("gateway", "ops"):
        if name in started:
            record = started[name]
            wait_until(name, functools.partial(app_healthy, record), pid=record.pid, log=record.log_path, timeout=60)
    return started


def app_healthy(record: ServiceRecord) -> bool:
    """Whether a detached app answers: the gateway's and the worker's readiness page, the ops page's liveness."""
    if not record.url:
        return pid_alive(record.pid)
    path = "/_liveness" if record.name == "ops" else "/_readiness"
    try:
        return httpx.get(f"{record.url}{path}", timeout=5.0).status_code == 200
    except httpx.HTTPError:
        return False


def app_exit(record: ServiceRecord) -> str:
    """How a detached app that is no longer running ended, as its supervisor recorded it."""
    try:
        ended = json.loads(exit_file(record).read_text())
    except (OSError, ValueError):
        return "exited; no exit status was recorded (its supervisor was killed?)"
    return f"{ended['exit']} at {ended['time']}"


def log_tail(record: ServiceRecord, lines: int = 15) -> list[str]:
    return tail(record.log_path, lines).splitlines()


def stop_app(record: ServiceRecord) -> None:
    terminate(record.pid, timeout=30)
