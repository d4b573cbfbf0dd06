"""Loading ``topology.yaml``: parse with positions, substitute environment variables, then validate in layers.

0. ``${NAME}`` and ``${NAME:-default}`` in string values are replaced from the environment
   (secrets stay out of the file); an unset variable without a default is a problem located
   at the value, and ``$${`` is a literal ``${``;
1. fields: the models (types, ranges, unknown keys);
2. the graph: names, references, order, partitions (``graph.graph_problems``);
3. the checks the caller passes: the worker and the CLI pass ``streams.components.component_problems``
   (stage, sink and agent types exist, their configs validate), ``topology validate`` also the
   running cluster (``environment.environment_problems``).

Every problem is one line ``file:line:col path: message``; all of a layer's problems are
reported together, and a layer runs only when the one before it passed. The parser's and the
models' own wording is translated into plain messages (``messages``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from headwater.errors import TopologyError
from headwater.runtime.topology.graph import Check, Loc, graph_problems
from headwater.runtime.topology.messages import field_problems, yaml_problem
from headwater.runtime.topology.model import Topology


def _locate(node: Any, loc: Loc, value: bool = False) -> tuple[int, int]:
    """Line and column (1-based) of the deepest YAML node on ``loc`` that exists: its key, or
    with ``value`` the value ``loc`` ends at."""
    line, col = 0, 0
    for i, part in enumerate(loc):
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.value(part) if value and i == len(loc) - 1 else node.lc.key(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        else:
            break
    return line + 1, col + 1


def _path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top)"


class LoadedTopology:
    """A parsed topology file: the YAML document (for positions) and its path."""

    def __init__(self, path: Path, doc: Any) -> None:
        self.path = path
        self.doc = doc

    def problem(self, loc: Loc, message: str, at_value: bool = False) -> str:
        line, col = _locate(self.doc, loc, at_value)
        return f"{self.path}:{line}:{col} {_path(loc)}: {message}"


ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
"""``$${`` (a literal ``${``), ``${…}`` (a reference), or a ``${`` never closed."""
ENV_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def _expand(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with its references replaced, and what is wrong with them."""
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        reference = ENV_NAME.fullmatch(match[1] or "") if match[0] != "${" else None
        if reference is None:
            what = "`${` without its `}`" if match[0] == "${" else f"`{match[0]}` is not a variable reference"
            problems.append(f"{what}: write ${{NAME}} or ${{NAME:-default}} (and $${{ for a literal ${{)")
            return match[0]
        name, default = reference[1], reference[2]
        found = environ.get(name)
        if default is not None and not found:  # as in a shell: unset or empty takes the default
            return default
        if found is None:
            problems.append(f"environment variable {name} is not set (give a default: ${{{name}:-default}})")
            return match[0]
        return found

    return ENV_REFERENCE.sub(replace, text), problems


def substitute_environment(loaded: LoadedTopology, environ: Mapping[str, str]) -> list[str]:
    """Replace ``${NAME}``/``${NAME:-default}`` in every string value of ``loaded`` in place.

    Keys are left alone. Returns one ``file:line:col path: message`` problem per bad reference,
    at the value that holds it.
    """
    problems: list[str] = []

    def visit(node: Any, at: Loc) -> None:
        items: list[tuple[Any, Any]]
        if isinstance(node, CommentedMap):
            items = list(node.items())
        elif isinstance(node, CommentedSeq):
            items = list(enumerate(node))
        else:
            return
        for key, value in items:
            if isinstance(value, str):
                if "${" in value:
                    expanded, wrong = _expand(value, environ)
                    problems.extend(loaded.problem((*at, key), message, at_value=True) for message in wrong)
                    node[key] = expanded
            else:
                visit(value, (*at, key))

    visit(loaded.doc, ())
    return problems


def parse(path: Path) -> LoadedTopology:
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise TopologyError([f"{path}: no such file (`headwater topology init {path}` writes the default "
                             "topology there; HEADWATER_TOPOLOGY names another)"]) from exc
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        line, col, message = yaml_problem(text, exc)
        raise TopologyError([f"{path}:{line}:{col} {message}"]) from exc
    if not isinstance(doc, dict):
        raise TopologyError([f"{path}:1:1 the topology must be a mapping with topics, pipeline and sinks"])
    return LoadedTopology(path, doc)


def load_topology(path: Path, checks: Sequence[Check] = ()) -> Topology:
    """Parse ``path``, substitute the environment, validate (fields, the graph, then each of ``checks`` in order).

    Raises ``TopologyError`` listing every problem of the first layer that found any.
    """
    loaded = parse(path)
    unset = substitute_environment(loaded, os.environ)
    if unset:
        raise TopologyError(unset)
    try:
        topology = Topology.model_validate(loaded.doc)
    except ValidationError as exc:
        raise TopologyError([loaded.problem(loc, message)
                             for loc, message in field_problems(exc.errors(), loaded.doc)]) from exc
    for check in (graph_problems, *checks):
        found = check(topology)
        if found:
            raise TopologyError([loaded.problem(loc, message) for loc, message in found])
    return topology
