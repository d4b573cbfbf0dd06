"""The suite runs on the packaged default topology, never on the user's `topology.yaml`.

The repository's `topology.yaml` is the user's to edit (docs/plugins.md says to add their
plugins there), so `make test-unit` must pass whatever it holds.
"""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

import headwater
from headwater.cli import app
from headwater.runtime.topology import load_topology
from headwater.runtime.topology.defaults import DEFAULT_CASES
from streams.components import component_problems
from tests.support import DEFAULT_TOPOLOGY, ROOT

runner = CliRunner()


def test_the_tests_default_topology_is_the_packaged_one() -> None:
    package = Path(headwater.__file__).parent
    assert package / "defaults" / "topology.yaml" == DEFAULT_TOPOLOGY
    assert DEFAULT_TOPOLOGY != ROOT / "topology.yaml"
    topology = load_topology(DEFAULT_TOPOLOGY, [component_problems])
    assert topology.pipeline.stages[0].type == "resolve_project"
    assert DEFAULT_TOPOLOGY.with_name("topology.tests.yaml") == DEFAULT_CASES
    assert DEFAULT_CASES.is_file()


def test_no_test_or_bench_reads_the_users_topology_file() -> None:
    """Only the packaged default: a path to the repository's topology.yaml is the user's file."""
    users_file = re.compile(r"""(ROOT|parents\[\d\])\s*/\s*["']topology(\.tests)?\.yaml["']""")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for folder in ("tests", "bench")
                 for path in sorted((ROOT / folder).rglob("*.py"))
                 if "node_modules" not in path.parts and path != Path(__file__)
                 for n, line in enumerate(path.read_text().splitlines(), start=1) if users_file.search(line)]
    assert offenders == [], "use tests.support.DEFAULT_TOPOLOGY (the packaged default)"


def test_topology_init_writes_the_default_and_keeps_an_edited_file(tmp_path: Path) -> None:
    target = tmp_path / "mine" / "topology.yaml"
    result = runner.invoke(app, ["topology", "init", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text() == DEFAULT_TOPOLOGY.read_text()
    assert (tmp_path / "mine" / "topology.tests.yaml").read_text() == DEFAULT_CASES.read_text()
    assert runner.invoke(app, ["topology", "test", str(target)]).exit_code == 0

    target.write_text("# mine\n")
    result = runner.invoke(app, ["topology", "init", str(target)])
    assert result.exit_code == 0
    assert "exists, kept (--force overwrites it)" in result.output
    assert target.read_text() == "# mine\n"
    assert runner.invoke(app, ["topology", "init", "--force", str(target)]).exit_code == 0
    assert target.read_text() == DEFAULT_TOPOLOGY.read_text()


def test_a_missing_topology_file_says_how_to_get_one(tmp_path: Path) -> None:
    missing = tmp_path / "topology.yaml"
    result = runner.invoke(app, ["topology", "validate", "--offline", str(missing)])
    assert result.exit_code == 1
    assert f"{missing}: no such file (`headwater topology init {missing}` writes the default" in result.output
