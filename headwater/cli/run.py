"""``headwater gateway | worker | run | restart``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer

from headwater.cli.output import checked_topology, say, settings, topology
from headwater.errors import StackError
from headwater.runtime.settings import Settings
from headwater.stack.endpoints import resolve_endpoints
from headwater.stack.process import port_is_free


def gateway(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the capture gateway (PostHog's capture API) in the foreground."""
    import uvicorn

    from capture_gateway.app import create_app

    given = settings()
    current = given.model_copy(update={"gateway_host": host or given.gateway_host,
                                       "gateway_port": port or given.gateway_port})
    _ports_free(current, gateway=True)
    application = create_app(current, resolve_endpoints(current), topology(current))
    # The gateway's own lines (its start-up line, errors) with a time; libraries stay at warnings.
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s")
    logging.getLogger("headwater.gateway").setLevel(logging.INFO)
    uvicorn.run(application, host=current.gateway_host, port=current.gateway_port,
                log_level="warning", loop="uvloop", http="httptools", access_log=False,
                proxy_headers=False)  # X-Forwarded-For counts only from HEADWATER_TRUSTED_PROXIES (ingest.client_ip)


def worker(loglevel: Annotated[str, typer.Option(help="Faust log level.")] = "warning") -> None:
    """Run the stream worker (the topology's Faust app) in the foreground."""
    from streams.app import run_worker

    current = settings()
    _ports_free(current, worker=True)
    sys.argv = sys.argv[:1]  # Faust's worker reads argv; it has no options of ours to parse
    run_worker(current, resolve_endpoints(current), checked_topology(current), loglevel)


def run(
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background; `headwater down` stops them.")]
    = False,
    no_ops: Annotated[bool, typer.Option("--no-ops", help="Do not start the ops page (`headwater ops`).")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64,
                                         help="Worker processes, web ports from HEADWATER_WORKER_WEB_PORT up.")] = 1,
    gateways: Annotated[int, typer.Option("--gateways", min=1, max=64,
                                          help="Gateway processes, ports from HEADWATER_GATEWAY_PORT up.")] = 1,
) -> None:
    """Run gateway, worker and the ops page together; in the foreground unless --detach (Ctrl-C stops them)."""
    from headwater.stack.apps import APPS, running_apps, stale_topology, start_apps

    current = settings()
    resolve_endpoints(current)
    checked_topology(current)  # a problem is reported here, before any process starts
    if detach:
        stale = stale_topology(current)
        kinds = [a for a in APPS if not (no_ops and a == "ops")]
        for record in start_apps(current, kinds, gateways=gateways, workers=workers).values():
            say(f"{record.name}: running (pid {record.pid}) at {record.url}, log {record.log}")
        if stale:
            names = ", ".join(stale[:-1]) + (" and " if len(stale) > 1 else "") + stale[-1]
            say(f"{names} started with an earlier {current.topology} and still run it: "
                "`headwater restart` loads the file as it is now")
        return
    detached = running_apps(current)
    if detached:
        where = ", ".join(f"{r.name} (pid {r.pid}) at {r.url}" for r in detached.values())
        raise StackError(f"the detached apps are running: {where}; `headwater restart` reloads them, "
                         "`headwater down` stops the stack (then `headwater run` can take their place)")
    plan = foreground_plan(current, gateways, workers)
    _ports_free(current, gateway=True, worker=True, ops=not no_ops, gateways=gateways, workers=workers)
    exe = [sys.executable, "-m", "headwater.cli"]
    children = [subprocess.Popen([*exe, kind], env={**os.environ, **env}) for _, kind, env in plan]
    if not no_ops:
        children.append(subprocess.Popen([*exe, "ops"]))
    ops_note = "" if no_ops else f", ops page on http://{current.ops_host}:{current.ops_port}/"
    where = ", ".join(f"http://{current.gateway_host}:{env['HEADWATER_GATEWAY_PORT']}"
                      for _, kind, env in plan if kind == "gateway")
    count = f"{workers} workers" if workers > 1 else "worker"
    say(f"{'gateways' if gateways > 1 else 'gateway'} on {where}, {count} running{ops_note}; Ctrl-C stops them")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(c.poll() is None for c in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [c.wait(timeout=60) for c in children]
    raise typer.Exit(0 if stopping else max(abs(c) for c in codes) or 1)


def foreground_plan(current: Settings, gateways: int, workers: int) -> list[tuple[str, str, dict[str, str]]]:
    """(name, command, variables) of each gateway and worker ``run`` starts in the foreground: the i-th of
    a kind on its setting's port plus i - 1 (the names and ports ``run --detach`` prefers too)."""
    from headwater.stack.apps import instance_names, instance_port

    plan = [(name, "gateway", {"HEADWATER_GATEWAY_PORT": str(instance_port(current.gateway_port, name))})
            for name in instance_names("gateway", gateways)]
    plan += [(name, "worker", {"HEADWATER_WORKER_WEB_PORT": str(instance_port(current.worker_web_port, name))})
             for name in instance_names("worker", workers)]
    return plan


def restart() -> None:
    """Restart the detached gateways and workers (and the ops page, if it ran), as many as ran, e.g. to load
    an edited topology."""
    from headwater.stack import manager
    from headwater.stack.apps import APPS, app_counts, start_apps
    from headwater.stack.state import read_state

    current = settings()
    resolve_endpoints(current)
    checked_topology(current)  # a broken topology leaves the running apps alone
    counts = app_counts(read_state(current.stack_file))
    wanted = [a for a in APPS if a != "ops" or a in counts]
    manager.down(current, progress=say, only=set(APPS))
    for record in start_apps(current, wanted, gateways=counts.get("gateway", 1),
                             workers=counts.get("worker", 1)).values():
        say(f"{record.name}: running (pid {record.pid}) at {record.url}, log {record.log}")


def _ports_free(current: Settings, gateway: bool = False, worker: bool = False, ops: bool = False,
                gateways: int = 1, workers: int = 1) -> None:
    """Refuse at once when a port the command listens on is taken (the server would fail or hang later)."""
    wanted = [("gateway", current.gateway_host, current.gateway_port + i,
               "HEADWATER_GATEWAY_PORT") for i in range(gateways)] if gateway else []
    wanted += [("worker", "127.0.0.1", current.worker_web_port + i, "HEADWATER_WORKER_WEB_PORT")
               for i in range(workers)] if worker else []
    wanted += [("ops page", current.ops_host, current.ops_port, "HEADWATER_OPS_PORT")] if ops else []
    for name, host, port, env_var in wanted:
        if not port_is_free(port, host):
            hint = " (or run with --no-ops)" if name == "ops page" else ""
            raise StackError(f"{name}: port {port} on {host} is in use (by the detached apps? `headwater status` "
                             f"shows them); stop what holds it, or set {env_var} to another port{hint}")


def register(app: typer.Typer) -> None:
    app.command()(gateway)
    app.command()(worker)
    app.command()(run)
    app.command()(restart)
