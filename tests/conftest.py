"""Shared test helpers: paths, and an isolated copy of the default topology."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from headwater.runtime.topology import Topology, load_topology

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = ROOT / "topology.yaml"


def isolated_topology(prefix: str, **overrides: Any) -> dict[str, Any]:
    """The default topology with every topic and the app id prefixed, as a YAML-ready dict."""
    topology: Topology = load_topology(DEFAULT_TOPOLOGY)
    doc = topology.model_dump(mode="json")

    def rename(name: str) -> str:
        return prefix + name

    doc["app_id"] = rename(doc["app_id"])
    doc["topics"] = {rename(k): v for k, v in doc["topics"].items()}
    doc["capture"] = {k: rename(v) for k, v in doc["capture"].items()}
    pipeline = doc["pipeline"]
    pipeline["sources"] = [rename(s) for s in pipeline["sources"]]
    pipeline["output"] = rename(pipeline["output"])
    pipeline["dead_letter"] = rename(pipeline["dead_letter"])
    if pipeline.get("warnings"):
        pipeline["warnings"] = rename(pipeline["warnings"])
    for sink in doc["sinks"]:
        sink["source"] = rename(sink["source"])
    doc.update(overrides)
    return doc


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the real stack."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport | None:
    """In CI an integration test may not skip: a skip there means something is not installed."""
    integration = item.get_closest_marker("integration") is not None
    skipped = call.excinfo is not None and call.excinfo.errisinstance(pytest.skip.Exception)
    if os.environ.get("CI") and integration and skipped:
        report = pytest.TestReport.from_item_and_call(item, call)
        report.outcome = "failed"
        report.longrepr = f"integration test skipped in CI: {call.excinfo.value if call.excinfo else ''}"
        return report
    return None
