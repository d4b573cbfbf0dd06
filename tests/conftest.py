"""Pytest hooks for the whole suite. Helpers live in ``tests.support``.

``ROOT``, ``DEFAULT_TOPOLOGY``, ``isolated_topology`` and ``write_yaml`` are re-exported here
for tests that still import them from this module.
"""

from __future__ import annotations

import os

import pytest

from tests.support import DEFAULT_TOPOLOGY, ROOT
from tests.support.topology import isolated_topology, write_yaml

__all__ = ["DEFAULT_TOPOLOGY", "ROOT", "isolated_topology", "write_yaml"]


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
