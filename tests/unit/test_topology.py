"""topology.yaml loading: the default validates; each problem is one `file:line:col path: message` line."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import TopologyError
from streams.topology import load_topology
from tests.conftest import DEFAULT_TOPOLOGY


def test_the_default_topology_validates() -> None:
    topology = load_topology(DEFAULT_TOPOLOGY)
    assert topology.capture.topic in topology.pipeline.sources
    assert [s.type for s in topology.pipeline.stages] == ["resolve_project", "prepare"]


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    return [p.removeprefix(f"{path}:") for p in caught.value.problems]


def test_field_errors_point_at_their_line_and_column(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """\
topics:
  events_raw:
    partitions: 0
    colour: blue
pipeline:
  sources: [events_raw]
  stages:
    - name: x
      type: prepar
  output: events_raw
sinks:
  - name: ch
    type: clickhose
    source: events_raw
""")
    assert problems == [
        "3:5 topics.events_raw.partitions: Input should be greater than or equal to 1",
        "4:5 topics.events_raw.colour: unknown key 'colour'",
        "9:7 pipeline.stages[0].type: Input should be 'resolve_project' or 'prepare'",
        "13:5 sinks[0].type: unknown type 'clickhose' (known: clickhouse)",
    ]


def test_graph_errors_name_unknown_topics_and_duplicate_stages(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """\
topics:
  events_raw: {}
  events_overflow: {}
  events_historical: {}
  events_dlq: {}
pipeline:
  sources: [events_raw, events_rwa]
  stages:
    - {name: a, type: resolve_project}
    - {name: a, type: prepare}
  output: events_processed
""")
    assert problems == [
        "7:25 pipeline.sources[1]: unknown topic 'events_rwa' (declared: events_dlq, events_historical, "
        "events_overflow, events_raw)",
        "11:3 pipeline.output: unknown topic 'events_processed' (declared: events_dlq, events_historical, "
        "events_overflow, events_raw)",
        "10:8 pipeline.stages[1].name: duplicate stage name 'a'",
    ]


def test_yaml_syntax_errors_have_a_location(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "topics:\n  events_raw: [\n")
    assert len(problems) == 1
    assert problems[0].split(" ")[0].count(":") == 1  # line:col


def test_the_reference_docs_are_current() -> None:
    from streams.topology_docs import render
    from tests.conftest import ROOT

    assert (ROOT / "docs" / "topology.md").read_text() == render() + "\n", (
        "docs/topology.md is stale: python -m streams.topology_docs > docs/topology.md")
