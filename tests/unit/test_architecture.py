"""The layers hold: imports point down, no module imports itself in a circle, the gateway loads no worker code.

The import contracts themselves are in pyproject.toml (``[tool.importlinter]``) and
docs/architecture.md draws them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import grimp

from tests.conftest import DEFAULT_TOPOLOGY, ROOT

PACKAGES = ("headwater", "capture_gateway", "streams", "sinks", "schemas")


def test_the_import_contracts_are_kept() -> None:
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "lint-imports")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _cycles(edges: dict[str, set[str]]) -> Iterator[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    yield sorted(component)


def test_no_import_cycle() -> None:
    graph = grimp.build_graph(*PACKAGES)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert list(_cycles(edges)) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert list(_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == [["a", "b", "c"]]


GATEWAY_PROCESS = """
import json, sys
from pathlib import Path
from capture_gateway.app import create_app
from headwater.runtime.settings import Endpoints, Settings
from headwater.runtime.topology import load_topology

topology = load_topology(Path(sys.argv[1]))
create_app(Settings(), Endpoints("127.0.0.1:1", "postgresql://127.0.0.1:1/x", "redis://127.0.0.1:1", "http://x"),
           topology)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_gateway_process_loads_no_stage_plugin_or_sink() -> None:
    proc = subprocess.run([sys.executable, "-c", GATEWAY_PROCESS, str(DEFAULT_TOPOLOGY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(proc.stdout)
    assert "capture_gateway.app" in loaded
    worker_side = [m for m in loaded if m.split(".")[0] in {"streams", "sinks", "faust", "chdb"}]
    assert worker_side == []
