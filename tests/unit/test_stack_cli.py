"""Stack commands with no services running: which service a command needs, and `headwater clean`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.errors import NotRunningError
from headwater.runtime.settings import Settings
from headwater.stack.endpoints import resolve_service
from headwater.stack.state import ServiceRecord, write_state
from tests.conftest import ROOT


def _env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    return {**env, "HEADWATER_STATE_DIR": str(state_dir)}


def _headwater(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "headwater.cli", *args], check=False,
                          env=_env(state_dir), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def _settings(state_dir: Path) -> Settings:
    return Settings(state_dir=state_dir, kafka_bootstrap=None, postgres_dsn=None, redis_url=None,
                    clickhouse_url=None)


def test_a_stack_never_started_is_not_configured(tmp_path: Path) -> None:
    with pytest.raises(NotRunningError, match=r"^postgres is not configured: run `headwater up`.*POSTGRES_DSN"):
        resolve_service(_settings(tmp_path / "state"), "postgres")


def test_a_stopped_stack_is_stopped_and_the_needed_service_is_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "state")
    write_state(settings.stack_file, {})  # what `headwater down` leaves
    with pytest.raises(NotRunningError, match=r"^clickhouse is stopped: the local stack .* is down"):
        resolve_service(settings, "clickhouse")


def test_a_service_whose_process_died_is_reported_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "state")
    gone = ServiceRecord("redis", 2**22 + 1, 1, "redis://x", "redis.log")  # above pid_max: no such process
    write_state(settings.stack_file, {"redis": gone})
    with pytest.raises(NotRunningError, match=r"^redis of the local stack has stopped"):
        resolve_service(settings, "redis")


def test_a_service_given_by_its_variable_needs_no_stack(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, postgres_dsn="postgresql://db/x")
    assert resolve_service(settings, "postgres") == "postgresql://db/x"


def test_project_list_with_the_stack_stopped_names_postgres_not_kafka(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    write_state(state_dir / "stack.json", {})
    result = _headwater(state_dir, "project", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("error: postgres is stopped"), result.stderr
    assert "kafka" not in result.stderr
    assert "Traceback" not in result.stderr


def test_clean_deletes_the_configured_state_dir(tmp_path: Path) -> None:
    state_dir = tmp_path / "elsewhere"
    write_state(state_dir / "stack.json", {})
    (state_dir / "logs").mkdir()
    result = _headwater(state_dir, "clean")
    assert result.returncode == 0, result.stderr
    assert not state_dir.exists()


def test_clean_refuses_a_dir_that_is_not_a_state_dir(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = _headwater(tmp_path, "clean")
    assert result.returncode == 1
    assert "does not look like a Headwater state dir" in result.stderr
    assert (tmp_path / "precious.txt").exists()


def test_make_clean_deletes_HEADWATER_STATE_DIR_not_dot_headwater(tmp_path: Path) -> None:
    """Run from a scratch directory, so a regression would delete the scratch `.headwater` only."""
    decoy = tmp_path / ".headwater"
    write_state(decoy / "stack.json", {})
    state_dir = tmp_path / "state"
    write_state(state_dir / "stack.json", {})
    result = subprocess.run(["make", "-f", str(ROOT / "Makefile"), f"HW={ROOT / '.venv/bin/headwater'}", "clean"],
                            check=False, env=_env(state_dir), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not state_dir.exists()
    assert decoy.exists()
