"""`headwater run --detach`, `status`, `restart` and `run` as a user meets them: crashes, edits, ports, logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException

from headwater.runtime.settings import Endpoints
from headwater.stack.process import pick_port
from tests.support import ROOT
from tests.support.kafka import assigned
from tests.support.processes import stack_env
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until


class Cli:
    """The `headwater` command with its own state dir, pointed at the session's stack."""

    def __init__(self, stack: Endpoints, pipeline: Pipeline, state_dir: Path) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        self.state_dir = state_dir
        self.env = {**base, **stack_env(stack), "HEADWATER_STATE_DIR": str(state_dir),
                    "HEADWATER_TOPOLOGY": str(pipeline.path), "HEADWATER_GATEWAY_PORT": str(pick_port(0)),
                    "HEADWATER_WORKER_WEB_PORT": str(pick_port(0)), "COLUMNS": "1000"}  # no wrapped lines

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "headwater.cli", *args], check=False, env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict[str, dict[str, Any]]:
        result = self("status", "--json")
        assert result.returncode == 0, result.stderr
        return {s["name"]: s for s in json.loads(result.stdout)["services"]}

    def log(self, name: str) -> str:
        return (self.state_dir / "logs" / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def cli(stack: Endpoints, pipeline: Pipeline, tmp_path: Path) -> Any:
    runner = Cli(stack, pipeline, tmp_path / "state")
    yield runner
    runner("down")


def _app_pid(supervisor: int) -> int:
    """The app's own process: the one child of its supervisor (``headwater.stack.supervise``)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_detached_apps_logs_restart_and_a_crashed_worker(cli: Cli, stack: Endpoints, pipeline: Pipeline) -> None:
    started = cli("run", "--detach")
    assert started.returncode == 0, started.stderr
    wait_until(lambda: assigned(stack.kafka, pipeline.group), 90, "the detached worker never joined its group",
               interval=0.5, logs=[cli.state_dir / "logs" / "worker.log"],
               ignore=(KafkaException,))  # the group coordinator may still be starting
    status = cli.status()
    assert {s["state"] for s in (status["gateway"], status["worker"])} == {"running"}, status

    # The logs: no terminal codes, no ERROR for a coordinator still starting, a gateway start-up line.
    worker_log, gateway_log = cli.log("worker"), cli.log("gateway")
    assert "\x1b[" not in worker_log
    assert "\x1b[" not in gateway_log
    assert not [line for line in worker_log.splitlines() if "ERROR" in line and "CoordinatorNotAvailable" in line]
    assert f"gateway starting on {status['gateway']['url']}: topology {pipeline.path}" in gateway_log
    assert f"Kafka {stack.kafka}" in gateway_log

    # `run` in the foreground refuses at once while the detached apps run.
    foreground = cli("run", timeout=30)
    assert foreground.returncode == 1
    assert "the detached apps are running" in foreground.stderr
    assert "headwater restart" in foreground.stderr
    assert "Traceback" not in foreground.stderr

    # An edited topology: `run --detach` says the apps run the old one; `restart` loads it.
    pipeline.path.write_text(pipeline.path.read_text() + "\n# edited\n")
    again = cli("run", "--detach")
    assert again.returncode == 0, again.stderr
    assert "gateway, worker and ops started with an earlier" in again.stderr  # the ops page draws the topology
    assert "`headwater restart`" in again.stderr
    restarted = cli("restart")
    assert restarted.returncode == 0, restarted.stderr
    after = cli.status()
    assert after["worker"]["state"] == "running"
    assert after["worker"]["pid"] != status["worker"]["pid"]
    assert "earlier" not in cli("run", "--detach").stderr

    # A worker that dies shows as exited, with how and the end of its log.
    os.kill(_app_pid(after["worker"]["pid"]), signal.SIGKILL)
    crashed = wait_until(lambda: (s := cli.status()["worker"])["state"] == "exited" and s, 30,
                         "the killed worker is not reported exited")
    assert crashed["exit"].startswith("killed by SIGKILL at "), crashed
    assert isinstance(crashed["log_tail"], list)
    assert crashed["log"].endswith("worker.log")
    table = cli("status")
    assert "exited" in table.stdout
    assert "killed by SIGKILL" in table.stdout
