"""What every command shares: settings, the topology, and how results are printed."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from headwater.settings import Settings
from streams.topology import Topology, load_topology

console = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings() -> Settings:
    return Settings()


def topology(current: Settings) -> Topology:
    return load_topology(current.topology)


def say(message: str) -> None:
    """Progress and notes go to stderr, so stdout stays clean for --json."""
    err.print(f"[dim]•[/dim] {message}")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
