"""`headwater topology graph` renders with the real Mermaid library (in headless Chromium)."""

from __future__ import annotations

import json
import subprocess
import sys

from headwater.runtime.topology import load_topology
from tests.support import DEFAULT_TOPOLOGY, ROOT

RENDER = ROOT / "tests" / "node" / "render_mermaid.mjs"


def _render(source: str) -> dict[str, str]:
    done = subprocess.run(["node", str(RENDER)], input=source, capture_output=True, text=True, timeout=90,
                          check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_the_graph_renders_and_names_every_topic_stage_and_sink() -> None:
    graph = subprocess.run([sys.executable, "-m", "headwater.cli", "topology", "graph", str(DEFAULT_TOPOLOGY)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    rendered = _render(graph)
    assert "svg" in rendered, rendered.get("error")
    topology = load_topology(DEFAULT_TOPOLOGY)
    names = [*topology.topics, *(s.name for s in topology.pipeline.stages), *(s.name for s in topology.sinks)]
    for name in names:
        assert name in rendered["svg"], name


def test_the_renderer_refuses_a_broken_diagram() -> None:
    assert "error" in _render("flowchart LR\n  a[(unclosed --> b\n")
