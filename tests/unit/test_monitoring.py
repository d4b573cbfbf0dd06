"""deploy/: the Prometheus alert rules and scrape config, and the Grafana dashboard.

``promtool`` (Debian's ``prometheus`` package, which ``make setup`` installs) checks the rule file
and the config; without it (not in CI) the rule file is checked against the rule-file schema here.
Every metric an alert or a panel reads must be one docs/metrics.md lists (``tests/support/promql.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.promql import metric_names, unknown_metrics

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "headwater.json"

RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "table", "bargauge", "heatmap", "text"}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _panels() -> list[dict[str, Any]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels += [panel, *panel.get("panels", [])]
    return panels


def _promtool() -> str | None:
    found = shutil.which("promtool")
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("promtool is missing: make setup installs it (Debian's prometheus package)")
    return found


@pytest.mark.parametrize(("command", "path"), [("rules", ALERTS), ("config", CONFIG)])
def test_promtool_accepts_the_rules_and_the_config(command: str, path: Path) -> None:
    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool is not installed (make setup installs it)")
    done = subprocess.run([promtool, "check", command, str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_file_follows_the_rule_file_schema() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names)), "group names must be unique"
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"}, group["name"]
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(rule["alert"])), rule
            assert str(rule["expr"]).strip(), rule
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            if "for" in rule:
                assert re.fullmatch(r"[0-9]+[smhdwy]", str(rule["for"])), rule["alert"]
            assert all(isinstance(v, str) for v in rule.get("labels", {}).values()), rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
            assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]


def test_the_alerts_cover_the_objectives_and_failure_modes() -> None:
    read = {rule["alert"]: metric_names(rule["expr"]) for rule in _rules()}
    every = set().union(*read.values())
    assert "headwater_consumer_lag_seconds" in every  # lag over 5 minutes
    assert {"headwater_consumer_committed_offset", "headwater_consumer_lag_messages"} <= every  # STALL
    assert {"headwater_consumer_partitions", "headwater_consumer_assigned_partitions", "up"} <= every  # STOP
    assert "headwater_stream_dead_letters_total" in every
    assert "headwater_capture_requests_total" in every  # 5xx and 503
    assert {"headwater_sink_freshness_seconds", "headwater_sink_end_to_end_seconds_bucket"} <= every
    lag = next(r for r in _rules() if r["alert"] == "HeadwaterLagOverObjective")
    assert "> 300" in lag["expr"]
    assert any("> 30" in r["expr"] and "end_to_end" in r["expr"] for r in _rules())


def test_every_metric_in_the_alerts_is_in_the_reference() -> None:
    assert unknown_metrics(rule["expr"] for rule in _rules()) == {}


def test_the_dashboard_loads_and_its_panels_have_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"]
    assert dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    panels = _panels()
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel
        assert panel["title"], panel
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_the_dashboard_shows_throughput_lag_latency_freshness_dead_letters_and_errors() -> None:
    read = set().union(*(metric_names(t["expr"]) for p in _panels() for t in p.get("targets", [])))
    assert {"headwater_capture_events_ingested_total", "headwater_stream_events_processed_total",
            "headwater_consumer_lag_messages", "headwater_consumer_lag_seconds",
            "headwater_sink_end_to_end_seconds_bucket", "headwater_sink_freshness_seconds",
            "headwater_stream_dead_letters_total", "headwater_stream_stage_outcomes_total"} <= read


def test_every_metric_in_the_dashboard_is_in_the_reference() -> None:
    assert unknown_metrics(t["expr"] for p in _panels() for t in p.get("targets", [])) == {}


def test_the_metric_name_reader() -> None:
    assert metric_names('sum by (a) (rate(x_total{b="c", d=~"e|f"}[5m])) / on (g) group_left y > 1e3') == {
        "x_total", "y"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))") == {"h_bucket"}
    assert unknown_metrics(["headwater_no_such_metric > 0"]) == {
        "headwater_no_such_metric > 0": {"headwater_no_such_metric"}}
