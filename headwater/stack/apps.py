"""Gateway and worker as background processes of the local stack (``headwater run --detach``).

They are recorded in the stack state beside the services, so ``headwater status`` shows them
and ``headwater down`` stops them (first, so the worker commits before Kafka goes away).
"""

from __future__ import annotations

import sys

import httpx

from headwater.runtime.settings import Settings
from headwater.stack.process import pick_port, pid_alive, spawn, terminate, wait_until
from headwater.stack.state import ServiceRecord, read_state, write_state

APPS = ("gateway", "worker")


def start_apps(settings: Settings) -> dict[str, ServiceRecord]:
    """Start gateway and worker detached (unless already running); return their records."""
    records = read_state(settings.stack_file)
    logs = settings.state_dir / "logs"
    started: dict[str, ServiceRecord] = {}
    for name in APPS:
        record = records.get(name)
        if record is not None and pid_alive(record.pid):
            started[name] = record
            continue
        if name == "gateway":
            port = pick_port(settings.gateway_port)
            env = {"HEADWATER_GATEWAY_PORT": str(port)}
            url = f"http://{settings.gateway_host}:{port}"
        else:
            port = pick_port(settings.worker_web_port)
            env = {"HEADWATER_WORKER_WEB_PORT": str(port)}
            url = f"http://127.0.0.1:{port}"
        log = logs / f"{name}.log"
        pid = spawn([sys.executable, "-m", "headwater.cli", name], log, env=env)
        started[name] = records[name] = ServiceRecord(name, pid, port, url, str(log))
        write_state(settings.stack_file, records)
    gateway = started["gateway"]
    wait_until("gateway", lambda: app_healthy(gateway), pid=gateway.pid, log=gateway.log_path, timeout=60)
    return started


def app_healthy(record: ServiceRecord) -> bool:
    if record.name != "gateway":
        return pid_alive(record.pid)
    try:
        return httpx.get(f"{record.url}/_readiness", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def stop_app(record: ServiceRecord) -> None:
    terminate(record.pid, timeout=30)
