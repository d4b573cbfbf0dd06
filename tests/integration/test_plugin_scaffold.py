"""A plugin made with `headwater plugin new`, edited, runs in the pipeline and its own test passes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import Topology, load_topology
from tests.support import ROOT
from tests.support.clickhouse import select, wait_for_count
from tests.support.processes import PYTHON, StartGateway, StartWorker, headwater_command
from tests.support.topology import fresh_prefix, isolated_pipeline, isolated_topology, write_yaml


async def test_scaffolded_plugin_runs_in_the_pipeline(stack: Endpoints, project: Project, start_gateway: StartGateway,
                                                      start_worker: StartWorker, tmp_path: Path) -> None:
    made = subprocess.run(headwater_command("plugin", "new", "team_colour", "--dir", str(tmp_path)), cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    package = tmp_path / "team_colour"
    plugin_file = package / "src" / "team_colour" / "plugin.py"
    source = plugin_file.read_text()
    edited = source.replace("event.properties[self.config.property] = True",
                            'event.properties["team_colour"] = "teal"')
    assert edited != source
    plugin_file.write_text(edited)

    env = {**os.environ, "PYTHONPATH": f"{package / 'src'}{os.pathsep}{ROOT}"}
    own_test = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package)],
                              cwd=package, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert own_test.returncode == 0, own_test.stdout + own_test.stderr

    doc = isolated_topology(fresh_prefix("s"))
    doc["pipeline"]["stages"].insert(-1, {"name": "team_colour", "type": "plugin",
                                          "plugin": "team_colour.plugin:TeamColour"})
    path = write_yaml(tmp_path / "topology.yaml", doc)
    validated = subprocess.run(headwater_command("topology", "validate", "--offline", str(path)), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60, check=False)
    assert validated.returncode == 0, validated.stderr
    pipeline = isolated_pipeline(stack.kafka, path, doc, load=lambda p: _load_with(p, package))
    gateway = start_gateway(pipeline, PYTHONPATH=env["PYTHONPATH"])  # every process loads the whole topology
    worker = start_worker(pipeline, PYTHONPATH=env["PYTHONPATH"])
    events = [{"event": "e", "distinct_id": f"d{i}", "uuid": str(uuid.uuid4())} for i in range(5)]
    response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps({"api_key": project.api_token,
                                                                          "batch": events}))
    assert response.status_code == 200
    table = f"events FINAL WHERE team_id = {project.id}"
    assert await wait_for_count(stack, f"SELECT count() FROM {table}", 5, logs=[worker]) == 5
    colours = await select(stack, f"SELECT DISTINCT JSONExtractString(properties, 'team_colour') FROM {table}")
    assert colours.rows == [["teal"]]


def _load_with(path: Path, package: Path) -> Topology:
    """Load a topology that names the scaffolded plugin, with its package importable here."""
    sys.path.insert(0, str(package / "src"))
    try:
        return load_topology(path)
    finally:
        sys.path.remove(str(package / "src"))
