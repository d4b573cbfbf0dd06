"""topology.yaml loading: the default validates; each problem is one `file:line:col path: message` line."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.errors import TopologyError
from headwater.runtime.topology import load_topology
from sinks.registry import sink_types
from streams.components import component_problems
from tests.conftest import DEFAULT_TOPOLOGY

KNOWN_SINKS = ", ".join(sorted(sink_types()))

def test_the_default_topology_validates() -> None:
    topology = load_topology(DEFAULT_TOPOLOGY, [component_problems])
    assert topology.capture.topic in topology.pipeline.sources
    assert [s.type for s in topology.pipeline.stages] == [
        "resolve_project", "event_restrictions", "validate", "normalize", "persons", "prepare"]


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as caught:
        load_topology(path, [component_problems])
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
      type: prepare
      on_error: explode
  output: events_raw
sinks:
  - name: ch
    source: events_raw
""")
    assert problems == [
        "3:5 topics.events_raw.partitions: Input should be greater than or equal to 1",
        "4:5 topics.events_raw.colour: unknown key 'colour' "
        "(a topic has: partitions, replication_factor, retention_hours, compacted)",
        "10:7 pipeline.stages[0].on_error: 'explode' is not one of retry, dead_letter, drop, stop",
        "13:5 sinks[0].type: missing key `type`",
    ]


GRAPH_BASE = """\
topics:
  events_raw: {}
  events_overflow: {}
  events_historical: {}
  events_dlq: {}
  ingestion_warnings: {}
  events_processed: {}
pipeline:
  sources: [events_raw]
  output: events_processed
  stages:
"""


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
  warnings: null
""")
    declared = "declared: events_dlq, events_historical, events_overflow, events_raw"
    assert problems == [
        f"7:25 pipeline.sources[1]: unknown topic 'events_rwa' ({declared})",
        f"11:3 pipeline.output: unknown topic 'events_processed' ({declared})",
        "10:8 pipeline.stages[1].name: duplicate stage name 'a'",
    ]


def test_stage_types_configs_and_plugins_are_checked(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GRAPH_BASE + """\
    - {name: resolve_project, type: resolve_project}
    - {name: v, type: validat}
    - {name: w, type: validate, config: {max_distinct_id_length: -1, colour: 1}}
    - {name: p, type: plugin, plugin: no_such_plugin}
    - {name: q, type: plugin}
    - {name: prepare, type: prepare}
""")
    assert problems[0].startswith(
        "13:17 pipeline.stages[1].type: unknown stage type 'validat': did you mean 'validate'? (known: ")
    assert problems[1:] == [
        "14:42 pipeline.stages[2].config.max_distinct_id_length: Input should be greater than or equal to 1",
        "14:70 pipeline.stages[2].config.colour: unknown key 'colour'",
        problems[3],
        "16:7 pipeline.stages[4].plugin: a plugin stage needs `plugin: <name or package.module:Class>`",
    ]
    assert problems[3].startswith("15:31 pipeline.stages[3].plugin: unknown plugin 'no_such_plugin' (")


def test_sink_types_and_configs_are_checked(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GRAPH_BASE + """\
    - {name: resolve_project, type: resolve_project}
    - {name: prepare, type: prepare}
sinks:
  - {name: a, type: clickhose, source: events_processed}
  - {name: b, type: clickhouse, source: events_processed, config: {records: persons, tabel: x}}
""")
    assert problems == [
        f"15:15 sinks[0].type: unknown sink type 'clickhose': did you mean 'clickhouse'? (known: {KNOWN_SINKS})",
        "16:68 sinks[1].config.records: Input should be 'events', 'ingestion_warnings', 'person', "
        "'person_distinct_id2', 'person_distinct_id_overrides', 'groups' or 'event_rollups'",
        "16:86 sinks[1].config.tabel: unknown key 'tabel': did you mean 'table'?",
    ]


def test_a_kafka_sinks_destination_must_be_a_declared_topic_of_its_own(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GRAPH_BASE + """\
    - {name: resolve_project, type: resolve_project}
    - {name: prepare, type: prepare}
sinks:
  - {name: a, type: kafka, source: events_processed, config: {topic: exports}}
  - {name: b, type: kafka, source: events_processed, config: {topic: events_raw}}
  - {name: c, type: kafka, source: events_processed, config: {topic: elsewhere, bootstrap: "other:9092"}}
""")
    assert [p.split(": ")[0] for p in problems] == ["15:63 sinks[0].config.topic", "16:63 sinks[1].config.topic"]
    assert "unknown topic 'exports': declare the sink's destination under `topics:`" in problems[0]
    assert "give the sink's destination a topic of its own" in problems[1]


def test_the_loader_alone_knows_no_component(tmp_path: Path) -> None:
    """Without the component checks (the gateway's view) an unknown stage type is not an error."""
    path = tmp_path / "topology.yaml"
    path.write_text(GRAPH_BASE + """\
    - {name: resolve_project, type: resolve_project}
    - {name: x, type: not_a_stage}
    - {name: prepare, type: prepare}
""")
    assert [s.type for s in load_topology(path).pipeline.stages] == ["resolve_project", "not_a_stage", "prepare"]


def test_stage_order_is_checked(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GRAPH_BASE + """\
    - {name: prepare, type: prepare}
    - {name: resolve_project, type: resolve_project}
""")
    assert problems == [
        "11:3 pipeline.stages: the last stage must be `prepare` (it shapes the output rows)",
        "11:3 pipeline.stages: the first stage must be `resolve_project` (others need the project)",
    ]


def test_agents_read_events_under_names_of_their_own(tmp_path: Path) -> None:
    def agents(start: str) -> str:
        return GRAPH_BASE + f"""\
    - {{name: resolve_project, type: resolve_project}}
    - {{name: prepare, type: prepare}}
agents:
  - {{name: a, source: events_processed, handler: "tests.fixtures.agents:tap"}}
  - {{name: a, source: events_dlq, handler: "tests.fixtures.agents:tap", start: {start}}}
"""

    assert _problems(tmp_path, agents("newest")) == ["16:73 agents[1].start: 'newest' is not one of earliest, latest"]
    assert _problems(tmp_path, agents("latest")) == [
        "16:6 agents[1].name: duplicate agent name 'a'",
        "16:15 agents[1].source: topic 'events_dlq' holds no events: an agent reads a capture topic or the "
        "pipeline's output (events_raw, events_overflow, events_historical, events_processed)",
    ]


def test_yaml_syntax_errors_have_a_location(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "topics:\n  events_raw: [\n")
    assert len(problems) == 1
    assert problems[0].split(" ")[0].count(":") == 1  # line:col


def test_the_reference_docs_are_current() -> None:
    from headwater.topology_docs import render
    from tests.conftest import ROOT

    assert (ROOT / "docs" / "topology.md").read_text() == render() + "\n", (
        "docs/topology.md is stale: python -m headwater.topology_docs > docs/topology.md")


def test_windows_are_checked_where_they_are_declared(tmp_path: Path) -> None:
    problems = _problems(tmp_path, GRAPH_BASE + """\
    - {name: resolve_project, type: resolve_project}
    - {name: prepare, type: prepare}
windows:
  - name: w
    source: events_dlq
    key: [team_id, event]
    size_seconds: 60
    step_seconds: 25
    output: events_processed
    aggregations:
      - {name: n, function: count}
      - {name: n, function: uniq}
""")
    assert problems == [
        "16:5 windows[0].source: topic 'events_dlq' holds no events: a window reads a capture topic or the "
        "pipeline's output (events_raw, events_overflow, events_historical, events_processed)",
        "20:5 windows[0].output: topic 'events_processed' holds events: give the window's results a topic of "
        "their own",
        "19:5 windows[0].step_seconds: the step (25s) must divide the size (60s)",
        "23:10 windows[0].aggregations[1].name: duplicate aggregation name 'n'",
        "23:9 windows[0].aggregations[1]: `uniq` needs a `field` (e.g. distinct_id, properties.price)",
    ]
