"""``headwater up | down | status | clean | install-kafka | migrate``."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import asdict

import typer
from rich.table import Table

from headwater.cli.output import JsonFlag, console, print_json, say, settings, topology
from headwater.errors import StackError
from headwater.stack import manager
from headwater.stack.endpoints import resolve_endpoints
from headwater.stack.kafka import ensure_jars


def up(as_json: JsonFlag = False) -> None:
    """Start the local stack (Kafka, Postgres, Redis, embedded ClickHouse) and wait until it answers."""
    show_status(manager.up(settings(), progress=say), as_json)


def down() -> None:
    """Stop exactly what `headwater up` and `headwater run --detach` started."""
    manager.down(settings(), progress=say)


def clean() -> None:
    """Stop the local stack and delete its state dir (HEADWATER_STATE_DIR, `.headwater` by default)."""
    current = settings()
    manager.down(current, progress=say)
    state_dir = current.state_dir
    if not state_dir.exists():
        say(f"{state_dir}: nothing to delete")
        return
    if not current.stack_file.exists() and any(state_dir.iterdir()):
        raise StackError(f"{state_dir} has no {current.stack_file.name}: it does not look like a Headwater "
                         "state dir, so it was not deleted (check HEADWATER_STATE_DIR)")
    shutil.rmtree(state_dir)
    say(f"{state_dir}: deleted")


def status(as_json: JsonFlag = False) -> None:
    """Show each service of the local stack: running, stopped, or external (set by a variable)."""
    show_status(manager.status(settings()), as_json)


def show_status(statuses: list[manager.ServiceStatus], as_json: bool) -> None:
    if as_json:
        print_json([asdict(s) for s in statuses])
        return
    table = Table("service", "state", "address", "pid", "log")
    colors = {"running": "green", "external": "cyan", "stopped": "yellow", "unhealthy": "red", "exited": "red"}
    for s in statuses:
        table.add_row(s.name, f"[{colors[s.state]}]{s.state}[/]", s.url or "", str(s.pid or ""), s.log or "")
    console.print(table)
    for s in statuses:
        if s.state == "exited":
            console.print(f"[red]{s.name} {s.exit}[/]; the end of {s.log}:", highlight=False)
            console.print("\n".join(s.log_tail or []), markup=False, highlight=False)


def install_kafka() -> None:
    """Fetch the Kafka broker's jars with Maven into the cache dir (once; `make setup` runs this)."""
    path = ensure_jars(settings().cache_dir, quiet=True)
    say(f"kafka jars in {path}")


def migrate() -> None:
    """Create the topology's Kafka topics, the Postgres schema and the ClickHouse tables."""
    from headwater.migrate import migrate as run_migrate

    current = settings()
    asyncio.run(run_migrate(resolve_endpoints(current), topology(current), say))


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(clean)
    app.command("install-kafka")(install_kafka)
    app.command()(migrate)
