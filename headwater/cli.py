"""``headwater``: one command for everything a user does. See ``headwater --help``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from headwater import projects as project_store
from headwater.errors import HeadwaterError
from headwater.settings import Settings, resolve_endpoints
from headwater.stack import manager
from headwater.stack.kafka import ensure_jars
from schemas.errors import SchemaError
from sinks.clickhouse.client import connect as clickhouse_connect
from sinks.errors import SinkError
from streams.errors import StreamsError
from streams.topology import Topology, load_topology

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Headwater: PostHog-compatible event ingestion.")
project_app = typer.Typer(no_args_is_help=True, help="Projects and their API tokens.")
topology_app = typer.Typer(no_args_is_help=True, help="Check and explain topology.yaml.")
app.add_typer(project_app, name="project")
app.add_typer(topology_app, name="topology")

console = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _settings() -> Settings:
    return Settings()


def _topology(settings: Settings) -> Topology:
    return load_topology(settings.topology)


def _say(message: str) -> None:
    err.print(f"[dim]•[/dim] {message}")


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@app.command()
def up(as_json: JsonFlag = False) -> None:
    """Start the local stack (Kafka, Postgres, Redis, embedded ClickHouse) and wait until it answers."""
    statuses = manager.up(_settings(), progress=_say)
    _show_status(statuses, as_json)


@app.command()
def down() -> None:
    """Stop exactly the services `headwater up` started."""
    manager.down(_settings(), progress=_say)


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Show each service of the local stack: running, stopped, or external (set by a variable)."""
    _show_status(manager.status(_settings()), as_json)


def _show_status(statuses: list[manager.ServiceStatus], as_json: bool) -> None:
    if as_json:
        _print_json([asdict(s) for s in statuses])
        return
    table = Table("service", "state", "address", "pid", "log")
    colors = {"running": "green", "external": "cyan", "stopped": "yellow", "unhealthy": "red"}
    for s in statuses:
        table.add_row(s.name, f"[{colors[s.state]}]{s.state}[/]", s.url or "", str(s.pid or ""), s.log or "")
    console.print(table)


@app.command("install-kafka")
def install_kafka() -> None:
    """Fetch the Kafka broker's jars with Maven into the cache dir (once; `make setup` runs this)."""
    settings = _settings()
    path = ensure_jars(settings.cache_dir, quiet=True)
    _say(f"kafka jars in {path}")


@app.command()
def migrate() -> None:
    """Create the topology's Kafka topics, the Postgres schema and the ClickHouse tables."""
    from headwater.migrate import migrate as run_migrate

    settings = _settings()
    asyncio.run(run_migrate(resolve_endpoints(settings), _topology(settings), _say))


@project_app.command("create")
def project_create(
    name: str,
    token: Annotated[str | None, typer.Option(help="Use this API token instead of a new one.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a project and print its API token (what SDKs send as api_key)."""
    endpoints = resolve_endpoints(_settings())
    project = asyncio.run(project_store.create_project(endpoints.postgres, name, token))
    if as_json:
        _print_json(asdict(project))
    else:
        console.print(f"project [bold]{project.name}[/] (id {project.id}) token [green]{project.api_token}[/]")


@project_app.command("list")
def project_list(as_json: JsonFlag = False) -> None:
    """List projects and their API tokens."""
    endpoints = resolve_endpoints(_settings())
    found = asyncio.run(project_store.list_projects(endpoints.postgres))
    if as_json:
        _print_json([asdict(p) for p in found])
        return
    table = Table("id", "name", "api token")
    for p in found:
        table.add_row(str(p.id), p.name, p.api_token)
    console.print(table)


@app.command()
def query(sql: str, as_json: JsonFlag = False) -> None:
    """Run SQL against ClickHouse (embedded or server) and print the result."""
    endpoints = resolve_endpoints(_settings())

    async def run() -> Any:
        client = clickhouse_connect(endpoints.clickhouse)
        try:
            return await client.select(sql)
        finally:
            await client.aclose()

    result = asyncio.run(run())
    if as_json:
        _print_json([dict(zip(result.columns, row, strict=True)) for row in result.rows])
        return
    table = Table(*result.columns)
    for row in result.rows:
        table.add_row(*(v if isinstance(v, str) else json.dumps(v) for v in row))
    console.print(table)


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the capture gateway (PostHog's capture API) in the foreground."""
    import uvicorn

    from capture_gateway.app import create_app

    settings = _settings()
    application = create_app(settings, resolve_endpoints(settings), _topology(settings))
    uvicorn.run(application, host=host or settings.gateway_host, port=port or settings.gateway_port,
                log_level="warning", loop="uvloop", http="httptools", access_log=False)


@app.command()
def worker(loglevel: Annotated[str, typer.Option(help="Faust log level.")] = "warning") -> None:
    """Run the stream worker (the topology's Faust app) in the foreground."""
    from streams.app import run_worker

    settings = _settings()
    sys.argv = sys.argv[:1]  # Faust's worker reads argv; it has no options of ours to parse
    run_worker(settings, resolve_endpoints(settings), _topology(settings), loglevel)


@app.command()
def run(
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background; `headwater down` stops them.")]
    = False,
) -> None:
    """Run gateway and worker together; in the foreground unless --detach (Ctrl-C stops both)."""
    settings = _settings()
    resolve_endpoints(settings)
    _topology(settings)
    if detach:
        from headwater.stack.apps import start_apps

        for record in start_apps(settings).values():
            _say(f"{record.name}: running (pid {record.pid}) at {record.url}, log {record.log}")
        return
    exe = [sys.executable, "-m", "headwater.cli"]
    children = [subprocess.Popen([*exe, "gateway"]), subprocess.Popen([*exe, "worker"])]
    _say(f"gateway on http://{settings.gateway_host}:{settings.gateway_port}, worker running; Ctrl-C stops both")
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


@topology_app.command("validate")
def topology_validate(
    file: Annotated[Path | None, typer.Argument(help="Defaults to HEADWATER_TOPOLOGY.")] = None,
) -> None:
    """Check a topology file; print one `file:line:col path: message` line per problem."""
    path = file or _settings().topology
    topology = load_topology(path)
    _say(f"{path}: ok ({len(topology.topics)} topics, {len(topology.pipeline.stages)} stages, "
         f"{len(topology.sinks)} sinks)")


def main() -> None:
    """Entry point: run the CLI, printing our errors as one clear message instead of a traceback."""
    try:
        app()
    except StreamsError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(2) from None
    except (HeadwaterError, SinkError, SchemaError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
