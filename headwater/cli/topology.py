"""``headwater topology init | validate | graph | describe | stages | sinks | schema | test``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from headwater.cli.output import JsonFlag, console, err, print_json, say, settings
from headwater.errors import HeadwaterError, TopologyError
from headwater.runtime.registry import ComponentType
from headwater.runtime.topology import Check, Topology, load_topology
from streams.components import component_problems

topology_app = typer.Typer(no_args_is_help=True, help="Check, draw, explain and test topology.yaml.")

FileArg = Annotated[Path | None, typer.Argument(help="The topology file; defaults to HEADWATER_TOPOLOGY.")]


def _problem(line: str) -> None:
    """One problem per line, never wrapped, so editors and grep can use it."""
    sys.stderr.write(line + "\n")


def _load(file: Path | None, *checks: Check) -> Topology:
    """The topology (fields, graph, components, then ``checks``), or every problem printed one per line, exit 1."""
    path = file or settings().topology
    try:
        return load_topology(path, [component_problems, *checks])
    except TopologyError as exc:
        for problem in exc.problems:
            _problem(problem)
        raise typer.Exit(1) from None


@topology_app.command("init")
def init(
    file: Annotated[Path | None, typer.Argument(help="Where to write it; defaults to HEADWATER_TOPOLOGY.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write the default topology (and its test cases, <name>.tests.yaml) for you to edit."""
    from headwater.runtime.topology.defaults import write_default

    for target, written in write_default(file or settings().topology, force):
        say(f"{target}: written" if written else f"{target}: exists, kept (--force overwrites it)")


@topology_app.command("validate")
def validate(
    file: FileArg = None,
    offline: Annotated[bool, typer.Option("--offline", help="Skip the checks against the running Kafka.")] = False,
) -> None:
    """Check a topology: fields, the graph, its components, then (unless --offline) the running cluster.

    Prints one `file:line:col path: message` line per problem and exits 1 when there are any.
    """
    from headwater.runtime.topology.environment import environment_problems

    path = file or settings().topology
    checks: list[Check] = []
    if not offline:
        from headwater.stack.endpoints import resolve_service

        try:
            bootstrap = resolve_service(settings(), "kafka")
        except HeadwaterError as exc:
            err.print(f"{path}: cannot check the environment: {exc} (or use --offline)", highlight=False)
            raise typer.Exit(1) from None
        checks.append(lambda topology: environment_problems(topology, bootstrap))
    topology = _load(path, *checks)
    say(f"{path}: ok ({len(topology.topics)} topics, {len(topology.pipeline.stages)} stages, "
        f"{len(topology.sinks)} sinks, {len(topology.windows)} windows"
        f"{'' if offline else ', topics present in Kafka'})")


@topology_app.command("graph")
def graph(
    file: FileArg = None,
    fmt: Annotated[Literal["mermaid", "dot"], typer.Option("--format", help="mermaid or dot.")] = "mermaid",
) -> None:
    """Draw the topology: every topic, stage and sink (Mermaid, or Graphviz DOT)."""
    from headwater.runtime.topology.graph import dot, mermaid

    topology = _load(file)
    published = sink_destinations(topology)
    print(mermaid(topology, published) if fmt == "mermaid" else dot(topology, published), end="")


@topology_app.command("describe")
def describe(file: FileArg = None) -> None:
    """Describe the topology in text, like Kafka Streams' Topology.describe()."""
    from headwater.runtime.topology.graph import describe as text

    topology = _load(file)
    print(text(topology, sink_destinations(topology)), end="")


def sink_destinations(topology: Topology) -> dict[str, list[str]]:
    """Each sink's destination topics (``sinks.registry.published_topics``), for the pictures."""
    from sinks.registry import published_topics

    return {sink.name: published_topics(sink.type, sink.config) for sink in topology.sinks}


def _list_types(kinds: Iterable[ComponentType[Any, Any]], as_json: bool, *extra: tuple[str, str, str]) -> None:
    if as_json:
        print_json([{"type": k.name, "summary": k.summary, "config": k.config.model_json_schema()} for k in kinds])
        return
    table = Table("type", "summary", "config keys")
    for kind in kinds:
        table.add_row(kind.name, kind.summary, ", ".join(kind.config.model_fields) or "-")
    for row in extra:
        table.add_row(*row)
    console.print(table)


@topology_app.command("stages")
def stages(as_json: JsonFlag = False) -> None:
    """List the stage types a topology can use, with their settings."""
    from streams.stages.registry import stage_types

    _list_types(stage_types().values(), as_json,
                ("plugin", "Runs a plugin (`headwater plugin list`).", "the plugin's Config"))


@topology_app.command("sinks")
def sinks(as_json: JsonFlag = False) -> None:
    """List the sink types a topology can use, with their settings."""
    from sinks.registry import sink_types

    _list_types(sink_types().values(), as_json)


@topology_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of topology.yaml (for editors; also shipped as docs/topology.schema.json)."""
    from headwater.topology_docs import json_schema

    print(json.dumps(json_schema(), indent=2))


@topology_app.command("test")
def run_tests(
    file: FileArg = None,
    cases: Annotated[Path | None, typer.Option(help="Cases file; default: <topology>.tests.yaml beside it.")] = None,
) -> None:
    """Run YAML test cases through the stages without a broker; exit 1 if any fails."""
    from headwater.runtime.topology.defaults import cases_path as default_cases
    from headwater.topology_cases import load_cases, run_cases

    path = file or settings().topology
    topology = _load(path)
    cases_path = cases or default_cases(path)
    try:
        results = run_cases(topology, load_cases(cases_path))
    except TopologyError as exc:
        for problem in exc.problems:
            _problem(problem)
        raise typer.Exit(1) from None
    failed = [r for r in results if r.failures]
    for result in results:
        mark = "[red]FAIL[/]" if result.failures else "[green]ok[/]  "
        console.print(f"{mark} {result.name}")
        for failure in result.failures:
            console.print(f"       {failure}", highlight=False, markup=False)
    console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)
