"""The topology commands as a user runs them: exit codes, problem lines, pictures, cases."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner, Result

from headwater.cli import app
from headwater.runtime.topology import load_topology
from tests.conftest import DEFAULT_TOPOLOGY, ROOT

runner = CliRunner()


def _run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def test_validate_ok_offline() -> None:
    result = _run("topology", "validate", "--offline", str(DEFAULT_TOPOLOGY))
    assert result.exit_code == 0, result.output
    assert "ok (11 topics, 6 stages, 7 sinks, 1 windows)" in result.output


def test_a_long_message_stays_on_one_line(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-directory-name-" * 4) / "topology.yaml"
    deep.parent.mkdir(parents=True)
    deep.write_text(DEFAULT_TOPOLOGY.read_text())
    result = _run("topology", "validate", "--offline", str(deep))
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1, result.output


def test_a_broken_topology_gives_one_located_line_per_problem(tmp_path: Path) -> None:
    text = DEFAULT_TOPOLOGY.read_text()
    broken = tmp_path / "topology.yaml"
    dlq = "    partitions: 1\n    retention_hours: 720\n  ingestion_warnings:"
    with_colour = dlq.replace("720\n", "720\n    colour: red\n")
    broken.write_text(text.replace("type: normalize", "type: normalise").replace(dlq, with_colour))
    result = _run("topology", "validate", "--offline", str(broken))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # fields first: the unknown key; the graph is checked once fields pass
    assert re.match(rf"{re.escape(str(broken))}:\d+:5 topics\.events_dlq\.colour: unknown key 'colour'", lines[0])
    broken.write_text(text.replace("type: normalize", "type: normalise"))
    result = _run("topology", "validate", "--offline", str(broken))
    assert result.exit_code == 1
    assert re.search(r":\d+:7 pipeline\.stages\[3\]\.type: unknown stage type 'normalise'", result.output)


def test_wrong_partition_counts_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    overflow = "  events_overflow:     # hot keys, routed here by the gateway without a key\n    partitions: 4"
    path.write_text(DEFAULT_TOPOLOGY.read_text().replace(overflow, "  events_overflow:\n    partitions: 8"))
    result = _run("topology", "validate", "--offline", str(path))
    assert result.exit_code == 1
    assert "pipeline.sources: the sources have different partition counts [4, 8]" in result.output


def test_graph_names_every_topic_stage_and_sink() -> None:
    topology = load_topology(DEFAULT_TOPOLOGY)
    for fmt in ("mermaid", "dot"):
        result = _run("topology", "graph", "--format", fmt, str(DEFAULT_TOPOLOGY))
        assert result.exit_code == 0, result.output
        for name in [*topology.topics, *(s.name for s in topology.pipeline.stages), *(s.name for s in topology.sinks)]:
            assert name in result.output, (fmt, name)
    mermaid = _run("topology", "graph", str(DEFAULT_TOPOLOGY)).output
    assert mermaid.startswith("flowchart LR\n")
    ids = re.findall(r"^\s+(n_\w+)[\[\(\{]", mermaid, re.MULTILINE)
    assert len(ids) == len(set(ids))  # every node declared once
    for edge in re.findall(r"(n_\w+) -", mermaid):
        assert edge in ids or edge == "gateway"


def test_describe_lists_the_processors_in_order() -> None:
    result = _run("topology", "describe", str(DEFAULT_TOPOLOGY))
    assert result.exit_code == 0
    processors = re.findall(r"Processor: (\w+)", result.output)
    topology = load_topology(DEFAULT_TOPOLOGY)
    assert processors == [s.name for s in topology.pipeline.stages] + [w.name for w in topology.windows]
    assert "state: headwater-window-event_rollups-changelog (changelog)" in result.output


def test_the_default_cases_pass_and_a_wrong_expectation_fails(tmp_path: Path) -> None:
    result = _run("topology", "test", str(DEFAULT_TOPOLOGY))
    assert result.exit_code == 0, result.output
    assert "6 passed, 0 failed" in result.output
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - name: wrong\n    input: [{event: e, distinct_id: d}]\n"
                     "    expect: [{dropped: true}]\n")
    result = _run("topology", "test", str(DEFAULT_TOPOLOGY), "--cases", str(cases))
    assert result.exit_code == 1
    assert "expect[0]: expected dropped, got passed" in result.output


def test_the_shipped_json_schema_is_current() -> None:
    import json

    from headwater.topology_docs import json_schema

    assert json.loads((ROOT / "docs" / "topology.schema.json").read_text()) == json_schema()


def test_the_repo_topologies_are_the_packaged_defaults() -> None:
    """`topology init` writes the packaged copies; the checkout's own files must not drift from them."""
    for name in ("topology.yaml", "topology.tests.yaml"):
        packaged = ROOT / "headwater" / "defaults" / name
        assert (ROOT / name).read_text() == packaged.read_text(), f"{name} differs from {packaged}: copy one over"


def test_window_expectations_are_checked(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text("""\
cases:
  - name: windows
    input:
      - {event: buy, distinct_id: a, timestamp: "2026-01-01T10:00:05Z"}
      - {event: buy, distinct_id: b, timestamp: "2026-01-01T10:00:15Z"}
      - {event: buy, distinct_id: c, timestamp: "2026-01-01T09:50:00Z"}
    expect: [{}, {}, {}]
    windows:
      event_rollups:
        - {start: "2026-01-01T10:01:00Z", values: {events: 3}}
      nope: []
""")
    result = _run("topology", "test", str(DEFAULT_TOPOLOGY), "--cases", str(cases))
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # the terminal wraps long lines
    # the 09:50 event is late (its window closed at 09:52, the watermark is at 10:00:15): not counted
    assert "windows.event_rollups[0].start: expected 2026-01-01T10:01:00Z, got 2026-01-01T10:00:00Z" in output
    assert "windows.event_rollups[0].values.events: expected 3, got 2" in output
    assert "windows.nope: no such window (windows: event_rollups)" in output
