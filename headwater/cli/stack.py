"""``headwater up | down | status | clean | install-kafka | migrate``."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from headwater.cli.output import JsonFlag, console, print_json, say, settings, topology
from headwater.errors import HeadwaterError, StackError
from headwater.runtime.settings import Settings
from headwater.stack import manager
from headwater.stack.endpoints import resolve_endpoints, resolve_service
from headwater.stack.kafka import ensure_jars


def up(
    as_json: JsonFlag = False,
    kafka_brokers: Annotated[int | None, typer.Option(
        "--kafka-brokers", min=1, max=9,
        help="Kafka brokers to run (HEADWATER_KAFKA_BROKERS); default: as many as this state dir's cluster has, "
             "1 for a new one.")] = None,
) -> None:
    """Start the local stack (Kafka, Postgres, Redis, embedded ClickHouse) and wait until it answers."""
    current = settings()
    if kafka_brokers is not None:
        current = current.model_copy(update={"kafka_brokers": kafka_brokers})
    statuses = manager.up(current, progress=say)
    if as_json:
        print_json({"services": [asdict(s) for s in statuses]})
        return
    show_status(statuses)


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
    """Show each service of the local stack (running, stopped, or external: set by a variable), the
    detached gateway and worker (running when their readiness page says so), and the pipeline's lag
    status (``headwater lag`` over 2 seconds)."""
    current = settings()
    statuses = manager.status(current)
    kafka = next((s for s in statuses if s.name == "kafka"), None)
    serving = kafka is not None and (kafka.state in {"running", "external"}  # or a cluster with a broker down
                                     or any(m.state == "running" for m in kafka.members or []))
    lag: dict[str, Any] = pipeline_lag(current) if serving \
        else {"error": "Kafka is not running (`headwater up` starts it)"}
    if as_json:
        print_json({"services": [asdict(s) for s in statuses], "lag": lag})
        return
    show_status(statuses)
    if "error" in lag:
        say(f"lag: {lag['error']}")
        return
    behind = [g for g in lag["groups"] if g["status"] != "OK"]
    say(f"lag: {lag['status']}" + "".join(f"; {g['role']} {g['status']}: {g['rule']}" for g in behind)
        + ("" if behind else f" ({len(lag['groups'])} readers caught up or consuming; `headwater lag` for more)"))


def pipeline_lag(current: Settings) -> dict[str, Any]:
    """Each reader's status, lag and lag in seconds over 2 samples a second apart, or why there is none."""
    from headwater.ops.lag import LagProbe, Sampler
    from headwater.runtime.topology.readers import readers

    try:
        probe = LagProbe(resolve_service(current, "kafka"))
        try:
            sampler = Sampler(probe, readers(topology(current)), window=1.0)
            sampler.sample()
            time.sleep(1.0)
            sampler.sample()
            report = sampler.report()
        finally:
            probe.close()
    except HeadwaterError as exc:
        return {"error": str(exc)}
    return {"status": report.status, "groups": [
        {"role": g.role, "group": g.group, "status": g.status, "rule": g.rule, "lag": g.lag,
         "lag_seconds": g.lag_seconds, "members": g.members} for g in report.groups]}


def show_status(statuses: list[manager.ServiceStatus]) -> None:
    table = Table("service", "state", "address", "pid", "log")
    colors = {"running": "green", "external": "cyan", "stopped": "yellow", "unhealthy": "red", "exited": "red"}
    for s in statuses:
        table.add_row(s.name, f"[{colors[s.state]}]{s.state}[/]", s.url or "", str(s.pid or ""), s.log or "")
        for m in s.members or []:  # a cluster's nodes, under it
            table.add_row(f"  {m.name}", f"[{colors[m.state]}]{m.state}[/]", m.url or "", str(m.pid or ""), m.log or "")
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
