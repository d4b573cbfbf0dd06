"""``headwater plugin new | list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from headwater.cli.output import JsonFlag, console, print_json, say
from headwater.scaffold import scaffold

plugin_app = typer.Typer(no_args_is_help=True, help="Write and find plugins.")


@plugin_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="snake_case name; also the entry point and YAML name.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the package.")] = Path("."),
) -> None:
    """Scaffold a plugin package: the plugin, a test, sample events, and install notes."""
    root = scaffold(name, directory)
    say(f"created {root}: edit src/{name}/plugin.py, then install it into the Python that runs Headwater "
        f"(in this project: `.venv/bin/pip install -e {root}`) and test it with `.venv/bin/pytest {root}`")


@plugin_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """Built-in plugins and those installed packages register (entry point group headwater.plugins)."""
    from streams.plugins.registry import available_plugins

    found = available_plugins()
    if as_json:
        print_json([{"name": n, "source": s, "summary": d} for n, (s, d) in sorted(found.items())])
        return
    table = Table("name", "from", "summary")
    for name, (source, summary) in sorted(found.items()):
        table.add_row(name, source, summary)
    console.print(table)
