"""`project list` and `restrictions list` never cut a value people copy, in any terminal width.

The store is faked at its I/O seam (the Postgres calls); the console is the real one, built
from COLUMNS as in a terminal.
"""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

from headwater.cli import app
from headwater.cli import projects as cli
from headwater.runtime import projects as store
from headwater.runtime import restrictions as rules
from headwater.runtime.projects import Project
from headwater.runtime.restrictions import Restriction

TOKEN = "phc_" + "k3Jd9sLq0WmZxV7tB2nR5yHc8aFe1GuTi6oPjYl4M"  # as long as the tokens `project create` makes
UUID = "0192e4c5-7a1b-7c3d-9e8f-0a1b2c3d4e5f"
PROJECTS = [Project(1, "marketing site", TOKEN, monthly_event_quota=1_000_000, rate_limit_per_second=50.0),
            Project(2, "mobile", TOKEN.replace("k3", "Q8"), discard_client_ip=True)]
runner = CliRunner()


@pytest.fixture
def columns(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("KAFKA_BOOTSTRAP", "POSTGRES_DSN", "REDIS_URL", "CLICKHOUSE_URL"):
        monkeypatch.setenv(f"HEADWATER_{var}", "unused://127.0.0.1:1")

    async def list_projects(dsn: str) -> list[Project]:
        return PROJECTS

    async def list_restrictions(dsn: str, project_id: int | None = None) -> list[tuple[int, Restriction]]:
        return [(1, Restriction(7, "drop", events=("$pageview",), distinct_ids=("user-1",), uuids=(UUID,)))]

    monkeypatch.setattr(store, "list_projects", list_projects)  # the modules the CLI calls through
    monkeypatch.setattr(rules, "list_restrictions", list_restrictions)
    return monkeypatch


def _output(monkeypatch: pytest.MonkeyPatch, width: int, *args: str) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(cli, "console", Console())  # sized from COLUMNS, as the CLI's console is
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("width", [40, 80, 120, 200])
def test_project_list_shows_whole_tokens(columns: pytest.MonkeyPatch, width: int) -> None:
    output = _output(columns, width, "project", "list")
    for project in PROJECTS:
        assert project.api_token in output, f"token cut at COLUMNS={width}:\n{output}"
        assert project.name in output
    assert "…" not in output
    too_long = [line for line in output.splitlines() if len(line) > width]
    assert all(TOKEN[:20] in line or TOKEN[:20].replace("k3", "Q8") in line for line in too_long), too_long


def test_project_list_is_a_table_when_it_fits(columns: pytest.MonkeyPatch) -> None:
    output = _output(columns, 200, "project", "list")
    assert "┃ api token" in output
    narrow = _output(columns, 80, "project", "list")
    assert f"api token: {TOKEN}" in narrow.splitlines()


@pytest.mark.parametrize("width", [40, 80, 200])
def test_restrictions_list_shows_whole_uuids(columns: pytest.MonkeyPatch, width: int) -> None:
    output = _output(columns, width, "restrictions", "list")
    for value in (UUID, "user-1", "$pageview"):
        assert value in output
    assert "…" not in output
