"""``headwater topology validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headwater.cli.output import say, settings
from streams.topology import load_topology

topology_app = typer.Typer(no_args_is_help=True, help="Check and explain topology.yaml.")


@topology_app.command("validate")
def validate(
    file: Annotated[Path | None, typer.Argument(help="Defaults to HEADWATER_TOPOLOGY.")] = None,
) -> None:
    """Check a topology file; print one `file:line:col path: message` line per problem."""
    path = file or settings().topology
    topology = load_topology(path)
    say(f"{path}: ok ({len(topology.topics)} topics, {len(topology.pipeline.stages)} stages, "
        f"{len(topology.sinks)} sinks)")
