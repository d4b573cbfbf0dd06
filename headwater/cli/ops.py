"""``headwater ops``: the live ops page (topology, lag, charts, dead letters, freshness), read-only."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

import typer

from headwater.cli.output import say, settings, topology
from headwater.errors import StackError
from headwater.runtime.settings import Settings
from headwater.stack.endpoints import resolve_service
from headwater.stack.process import port_is_free


def ops(
    host: Annotated[str | None, typer.Option(help="Address to listen on (HEADWATER_OPS_HOST; 127.0.0.1). Any "
                                                  "other than loopback lets other machines read the page.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (HEADWATER_OPS_PORT; 8100).")] = None,
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between samples.")] = 2.0,
    window: Annotated[float, typer.Option(min=2.0, help="Seconds the rates and lag rules are taken over.")] = 10.0,
    worker_metrics: Annotated[str | None, typer.Option(
        "--worker-metrics", help="The worker's /metrics URL (default: the detached worker's, else "
                                 "http://127.0.0.1:HEADWATER_WORKER_WEB_PORT/metrics).")] = None,
) -> None:
    """Serve the live ops page: the topology with per-stage rates and errors, every reader's lag and
    status, an hour of lag and throughput charts, the dead letters and sink freshness. Read-only."""
    import uvicorn

    from headwater.cli.topology import sink_destinations
    from headwater.ops.page.server import build

    current = settings()
    host, port = host or current.ops_host, port or current.ops_port
    if not is_loopback(host):
        say(f"[yellow]warning:[/yellow] the ops page listens on {host}, not loopback: anyone who can reach "
            "this machine can read it (it shows topics, groups and dead letters' reasons)")
    if not port_is_free(port, host):
        raise StackError(f"ops page: port {port} on {host} is in use; pass --port or set HEADWATER_OPS_PORT")
    model = topology(current)
    application = build(model, resolve_service(current, "kafka"), worker_metrics or worker_metrics_url(current),
                        interval=interval, window=window, published=sink_destinations(model))
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s")
    say(f"ops page on http://{host}:{port}/ (read-only; Ctrl-C stops it)")
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_metrics_url(current: Settings) -> str:
    """The (first) detached worker's ``/metrics`` when one runs (``run --detach`` may have moved its port), else
    the setting's."""
    from headwater.stack.apps import app_kind, running_apps

    record = next((r for name, r in running_apps(current).items() if app_kind(name) == "worker"), None)
    if record is not None:
        return f"{record.url}/metrics"
    return f"http://127.0.0.1:{current.worker_web_port}/metrics"
