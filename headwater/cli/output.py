"""What every command shares: settings, the topology, and how results are printed."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from headwater.runtime.settings import Settings
from headwater.runtime.topology import Topology, load_topology

console = Console()
# Messages are never hard-wrapped: a path or a problem line stays one line when grepped or piped.
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings() -> Settings:
    return Settings()


def topology(current: Settings) -> Topology:
    """The topology's fields and graph, checked; enough for the gateway, migrate and the DLQ tools."""
    return load_topology(current.topology)


def checked_topology(current: Settings) -> Topology:
    """The topology with its components checked too (stage, sink and agent types, their configs): the worker's."""
    from streams.components import component_problems

    return load_topology(current.topology, [component_problems])


def say(message: str) -> None:
    """Progress and notes go to stderr, so stdout stays clean for --json."""
    err.print(f"[dim]•[/dim] {message}")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
