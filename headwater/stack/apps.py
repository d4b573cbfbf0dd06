"""Gateway, worker and the ops page as background processes of the local stack (``headwater run --detach``).

They are recorded in the stack state beside the services, so ``headwater status`` shows them
(``exited``, with how and the end of the log, once one has stopped on its own) and
``headwater down`` stops them (first, so the worker commits before Kafka goes away). Each runs
under ``headwater.stack.supervise``, which records its exit. The record keeps a digest of the
topology file it started with, so ``run --detach`` can say when the file changed since.

Several gateways or workers (``run --gateways M --workers N``) are ``gateway-1`` … and
``worker-1`` …, each on the setting's port plus its index less one; one keeps its plain name.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import httpx

from headwater.errors import StackError
from headwater.runtime.settings import Settings
from headwater.stack.process import pick_port, pid_alive, spawn, tail, terminate, wait_until
from headwater.stack.state import ServiceRecord, read_state, write_state

APPS = ("gateway", "worker", "ops")  # the kinds, started in this order: the ops page reads the worker's port


def instance_names(kind: str, count: int) -> list[str]:
    """The records of ``count`` apps of ``kind``: ``gateway`` alone, ``gateway-1`` … ``gateway-N`` for several."""
    if count < 1:
        raise ValueError(f"at least one {kind}, not {count}")
    return [kind] if count == 1 else [f"{kind}-{i}" for i in range(1, count + 1)]


def app_kind(name: str) -> str | None:
    """``gateway`` for ``gateway`` and ``gateway-2``; None for a name that is no app's (``kafka-1``)."""
    kind, dash, index = name.partition("-")
    if kind in APPS and (not dash or (index.isdigit() and int(index) >= 1)):
        return kind
    return None


def instance_index(name: str) -> int:
    """1 for ``gateway`` and ``gateway-1``, 2 for ``gateway-2``."""
    _, _, index = name.partition("-")
    return int(index) if index else 1


def instance_port(base: int, name: str) -> int:
    """The port an app prefers: the setting's (``HEADWATER_GATEWAY_PORT``) plus its index less one."""
    return base + instance_index(name) - 1


def app_names(records: Mapping[str, object]) -> list[str]:
    """The recorded apps, in start order: every gateway, every worker, the ops page."""
    apps = [n for n in records if app_kind(n) is not None]
    return sorted(apps, key=lambda n: (APPS.index(app_kind(n) or ""), instance_index(n)))


def app_counts(records: Mapping[str, object]) -> dict[str, int]:
    """How many of each kind are recorded (``restart`` starts as many again)."""
    counts: dict[str, int] = {}
    for name in app_names(records):
        kind = app_kind(name) or ""
        counts[kind] = counts.get(kind, 0) + 1
    return counts


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
    records = read_state(settings.stack_file)
    return {name: records[name] for name in app_names(records) if pid_alive(records[name].pid)}


def stale_topology(settings: Settings) -> list[str]:
    """The running apps that started with another topology file, or another content of it."""
    path, digest = str(settings.topology.resolve()), topology_digest(settings.topology)
    return [name for name, r in running_apps(settings).items()
            if (r.topology, r.topology_digest) != (path, digest)]


def start_apps(settings: Settings, names: Sequence[str] = APPS, *, gateways: int = 1,
               workers: int = 1) -> dict[str, ServiceRecord]:
    """Start the apps ``names`` (kinds of ``APPS``: gateway, worker, the ops page) detached, ``gateways``
    gateways and ``workers`` workers, unless already running; return their records.

    One of a kind keeps its plain name (``gateway``); several are ``gateway-1`` … ``gateway-N``,
    the i-th preferring the setting's port plus i - 1 (``instance_port``). A detached app of a
    kind under the other naming (one ``gateway`` running, three wanted) is ``StackError``:
    ``headwater down`` (or ``restart``) first.
    """
    records = read_state(settings.stack_file)
    logs = settings.state_dir / "logs"
    counts = {"gateway": gateways, "worker": workers, "ops": 1}
    wanted = [name for kind in APPS if kind in names for name in instance_names(kind, counts[kind])]
    _refuse_other_counts(records, wanted)
    for name in [n for n in app_names(records) if app_kind(n) in names and n not in wanted]:
        del records[name]  # one that exited under the other naming: the new ones take its place
    started: dict[str, ServiceRecord] = {}
    for name in wanted:
        record = records.get(name)
        if record is not None and pid_alive(record.pid):
            started[name] = record
            continue
        kind = app_kind(name)
        if kind == "gateway":
            port = pick_port(instance_port(settings.gateway_port, name))
            env = {"HEADWATER_GATEWAY_PORT": str(port)}
            url = f"http://{settings.gateway_host}:{port}"
        elif kind == "worker":
            port = pick_port(instance_port(settings.worker_web_port, name))
            env = {"HEADWATER_WORKER_WEB_PORT": str(port)}
            url = f"http://127.0.0.1:{port}"
        else:  # the ops page scrapes the (first) worker started beside it
            port = pick_port(settings.ops_port)
            env = {"HEADWATER_OPS_PORT": str(port)}
            worker = next((records[n] for n in app_names(records) if app_kind(n) == "worker"), None)
            if worker is not None:
                env["HEADWATER_WORKER_WEB_PORT"] = str(worker.port)
            url = f"http://{settings.ops_host}:{port}"
        topology = settings.topology.resolve()
        env["HEADWATER_TOPOLOGY"] = str(topology)
        log = logs / f"{name}.log"
        new = ServiceRecord(name, 0, port, url, str(log), str(topology), topology_digest(topology))
        exit_file(new).unlink(missing_ok=True)
        app = [sys.executable, "-m", "headwater.cli", kind or name]
        pid = spawn([sys.executable, "-m", "headwater.stack.supervise", str(exit_file(new)), "--", *app], log, env=env)
        started[name] = records[name] = replace(new, pid=pid)
        write_state(settings.stack_file, records)
    for record in started.values():
        if app_kind(record.name) in ("gateway", "ops"):
            wait_until(record.name, functools.partial(app_healthy, record), pid=record.pid, log=record.log_path,
                       timeout=60)
    return started


def _refuse_other_counts(records: Mapping[str, ServiceRecord], wanted: Sequence[str]) -> None:
    kinds = {app_kind(n) for n in wanted}
    others = [n for n in app_names(records) if app_kind(n) in kinds and n not in wanted and pid_alive(records[n].pid)]
    if others:
        raise StackError(f"{', '.join(others)} run detached, so this is not the count asked for: `headwater down` "
                         "stops them (or `headwater restart` restarts as many as run)")


def app_healthy(record: ServiceRecord) -> bool:
    """Whether a detached app answers: the gateway's and the worker's readiness page, the ops page's liveness."""
    if not record.url:
        return pid_alive(record.pid)
    path = "/_liveness" if app_kind(record.name) == "ops" else "/_readiness"
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
