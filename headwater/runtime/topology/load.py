"""Loading ``topology.yaml``: parse with positions, then validate in layers.

1. fields: the models (types, ranges, unknown keys);
2. the graph: names, references, order, partitions (``graph.graph_problems``);
3. the checks the caller passes: the worker and the CLI pass ``streams.components.component_problems``
   (stage, sink and agent types exist, their configs validate), ``topology validate`` also the
   running cluster (``environment.environment_problems``).

Every problem is one line ``file:line:col path: message``; all of a layer's problems are
reported together, and a layer runs only when the one before it passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from headwater.errors import TopologyError
from headwater.runtime.topology.graph import Check, Loc, graph_problems
from headwater.runtime.topology.model import Topology


def _locate(node: Any, loc: Loc) -> tuple[int, int]:
    """Line and column (1-based) of the deepest YAML node on ``loc`` that exists."""
    line, col = 0, 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part)
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

    def problem(self, loc: Loc, message: str) -> str:
        line, col = _locate(self.doc, loc)
        return f"{self.path}:{line}:{col} {_path(loc)}: {message}"


def parse(path: Path) -> LoadedTopology:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise TopologyError([f"{where} {exc.problem}"]) from exc
    if not isinstance(doc, dict):
        raise TopologyError([f"{path}:1:1 the topology must be a mapping with topics, pipeline and sinks"])
    return LoadedTopology(path, doc)


def load_topology(path: Path, checks: Sequence[Check] = ()) -> Topology:
    """Parse and validate ``path`` (fields, the graph, then each of ``checks`` in order).

    Raises ``TopologyError`` listing every problem of the first layer that found any.
    """
    loaded = parse(path)
    try:
        topology = Topology.model_validate(loaded.doc)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = f"unknown key {loc[-1]!r}" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(loaded.problem(loc, message))
        raise TopologyError(problems) from exc
    for check in (graph_problems, *checks):
        found = check(topology)
        if found:
            raise TopologyError([loaded.problem(loc, message) for loc, message in found])
    return topology
