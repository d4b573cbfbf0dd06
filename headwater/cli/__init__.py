"""``headwater``: one command for everything a user does. See ``headwater --help``."""

from __future__ import annotations

import typer

from headwater.cli import run, stack
from headwater.cli.dlq import dlq_app
from headwater.cli.lag import lag
from headwater.cli.ops import ops
from headwater.cli.output import err
from headwater.cli.plugin import plugin_app
from headwater.cli.projects import project_app, restrictions_app
from headwater.cli.query import query
from headwater.cli.topology import topology_app
from headwater.errors import HeadwaterError, TopologyError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Headwater: PostHog-compatible event ingestion.")
stack.register(app)
run.register(app)
app.command()(query)
app.command()(lag)
app.command()(ops)
app.add_typer(project_app, name="project")
app.add_typer(restrictions_app, name="restrictions")
app.add_typer(topology_app, name="topology")
app.add_typer(dlq_app, name="dlq")
app.add_typer(plugin_app, name="plugin")


def main() -> None:
    """Entry point: run the CLI, printing our errors as one clear message instead of a traceback."""
    try:
        app()
    except HeadwaterError as exc:  # every package's errors hang from it (headwater.errors)
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(2 if isinstance(exc, TopologyError) else 1) from None
