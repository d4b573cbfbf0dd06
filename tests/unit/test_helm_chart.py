"""deploy/helm/headwater: the Kubernetes chart for gateways, workers and the ops page.

``helm`` (on PATH, or built by ``scripts/setup.sh helm`` into Headwater's cache directory) lints
the chart with ``--strict`` and renders it with several value sets; the rendered objects are then
checked for what docs/deployment.md promises (probes on the health endpoints, secrets only by
reference, the migrate hook, scaling bounded by the partitions, PDBs, grace periods), and the
value sets the chart must refuse are refused. Without helm those tests skip, in CI too: building
it takes ~10 minutes, too long for every ``make setup`` (set ``HEADWATER_REQUIRE_HELM=1`` to make
a missing helm fail). The chart's static files are checked either way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from headwater.runtime.settings import Endpoints, Settings
from headwater.runtime.topology import load_topology
from tests.support import DEFAULT_TOPOLOGY, ROOT

CHART = ROOT / "deploy" / "helm" / "headwater"
CHART_TOPOLOGY = CHART / "files" / "topology.yaml"
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
SETTINGS_VARS = {f"HEADWATER_{name.upper()}" for name in Settings.model_fields}
HELM_VERSION = "v4.3.2"  # the one `scripts/setup.sh helm` builds

Manifest = dict[str, Any]


def _helm() -> str | None:
    cache = Path(os.environ.get("HEADWATER_CACHE_DIR", Path.home() / ".cache" / "headwater"))
    found = shutil.which("helm") or next(
        (str(p) for p in [cache / f"helm-{HELM_VERSION}" / "helm"] if p.is_file()), None)
    if found is None and os.environ.get("HEADWATER_REQUIRE_HELM") == "1":
        pytest.fail(f"helm is missing: `bash scripts/setup.sh helm` builds {HELM_VERSION} (needs Go)")
    return found


@pytest.fixture(scope="module")
def helm() -> str:
    found = _helm()
    if found is None:
        pytest.skip("helm is not installed (`bash scripts/setup.sh helm` builds it, with Go)")
    return found


def _run(helm: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    # Helm's own config, cache and data in a temporary directory: nothing of the user's is read or written.
    env = {**os.environ, "HELM_CONFIG_HOME": str(tmp / "config"), "HELM_CACHE_HOME": str(tmp / "cache"),
           "HELM_DATA_HOME": str(tmp / "data")}
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


def _values_file(tmp: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(values))
    return path


def _render(helm: str, tmp: Path, values: dict[str, Any] | None = None) -> list[Manifest]:
    args = ["template", "hw", str(CHART), "--namespace", "analytics"]
    if values is not None:
        args += ["-f", str(_values_file(tmp, values))]
    done = _run(helm, args, tmp)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _refused(helm: str, tmp: Path, values: dict[str, Any]) -> str:
    done = _run(helm, ["template", "hw", str(CHART), "-f", str(_values_file(tmp, values))], tmp)
    assert done.returncode != 0, "rendered, though it should have been refused"
    return done.stderr


def _one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def _container(deployment: Manifest) -> Manifest:
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --- static: what holds without helm ----------------------------------------------------------------------


def test_the_charts_topology_is_the_default_replicated_three_times() -> None:
    chart: dict[str, Any] = yaml.safe_load(CHART_TOPOLOGY.read_text())
    default: dict[str, Any] = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    assert {spec.get("replication_factor") for spec in chart["topics"].values()} == {3}
    for spec in chart["topics"].values():
        del spec["replication_factor"]
    assert chart == default


def test_the_values_agree_with_the_topology_and_hold_no_secret() -> None:
    topology: dict[str, Any] = yaml.safe_load(CHART_TOPOLOGY.read_text())
    partitions = topology["topics"][topology["capture"]["topic"]]["partitions"]
    assert VALUES["topology"]["capturePartitions"] == partitions
    assert VALUES["workers"]["autoscaling"]["maxReplicas"] <= partitions
    assert VALUES["workers"]["replicas"] <= partitions
    for name in ("postgres", "redis", "clickhouse"):
        assert set(VALUES["connections"][name]) == {"secretName", "secretKey"}, name
    assert VALUES["gateway"]["port"] == Settings.model_fields["gateway_port"].default
    assert VALUES["workers"]["webPort"] == Settings.model_fields["worker_web_port"].default
    assert VALUES["ops"]["port"] == Settings.model_fields["ops_port"].default
    # the chart's sizing is the guide's: a gateway and a worker are each one process on one core
    assert VALUES["gateway"]["resources"]["requests"]["cpu"] == VALUES["workers"]["resources"]["requests"]["cpu"] == "1"


def test_setup_builds_the_helm_this_test_expects() -> None:
    assert f"HELM_VERSION={HELM_VERSION}\n" in (ROOT / "scripts" / "setup.sh").read_text()


def test_the_deployment_guide_names_the_charts_numbers() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    assert "deploy/helm/headwater" in guide
    assert "## Kafka cluster and ClickHouse servers" in guide
    assert "make bench" in guide
    assert f"terminationGracePeriodSeconds: {VALUES['workers']['terminationGracePeriodSeconds']}" in guide


def test_the_worker_listens_where_its_setting_says(tmp_path: Path) -> None:
    """Loopback by default (Faust alone would listen on every interface); the chart sets 0.0.0.0 so that
    the kubelet's probes and Prometheus reach the pod."""
    from streams.app import WorkerOptions, build_app

    topology = load_topology(DEFAULT_TOPOLOGY)
    endpoints = Endpoints("127.0.0.1:1", "postgresql://x@127.0.0.1:1/x", "redis://127.0.0.1:1/0", "http://127.0.0.1:1/x")
    assert Settings().worker_web_host == "127.0.0.1"
    default = build_app(topology, endpoints, WorkerOptions(web_port=6066, data_dir=tmp_path / "a"))
    assert (default.conf.web_bind, default.conf.web_host) == ("127.0.0.1", "127.0.0.1")
    pod = build_app(topology, endpoints, WorkerOptions(web_port=6066, data_dir=tmp_path / "b", web_host="0.0.0.0"))
    assert pod.conf.web_bind == "0.0.0.0"


# --- helm ---------------------------------------------------------------------------------------------------


def test_helm_lint_strict_passes(helm: str, tmp_path: Path) -> None:
    done = _run(helm, ["lint", "--strict", str(CHART)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    overrides = {"metrics": {"serviceMonitor": {"enabled": True}}, "ops": {"enabled": False},
                 "secretEnv": [{"name": "HOOK_SECRET", "secretName": "hooks", "secretKey": "purchases"}]}
    done = _run(helm, ["lint", "--strict", str(CHART), "-f", str(_values_file(tmp_path, overrides))], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_default_render_has_every_part(helm: str, tmp_path: Path) -> None:
    manifests = _render(helm, tmp_path)
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    assert kinds == {
        ("ConfigMap", "hw-headwater-topology"), ("ConfigMap", "hw-headwater-migrate-topology"),
        ("Job", "hw-headwater-migrate"),
        ("Deployment", "hw-headwater-gateway"), ("Service", "hw-headwater-gateway"),
        ("HorizontalPodAutoscaler", "hw-headwater-gateway"), ("PodDisruptionBudget", "hw-headwater-gateway"),
        ("Deployment", "hw-headwater-worker"), ("Service", "hw-headwater-worker"),
        ("HorizontalPodAutoscaler", "hw-headwater-worker"), ("PodDisruptionBudget", "hw-headwater-worker"),
        ("Deployment", "hw-headwater-ops"), ("Service", "hw-headwater-ops"),
    }
    topology = _one(manifests, "ConfigMap", "hw-headwater-topology")["data"]["topology.yaml"]
    assert topology == CHART_TOPOLOGY.read_text()


def test_probes_point_at_the_health_endpoints(helm: str, tmp_path: Path) -> None:
    manifests = _render(helm, tmp_path)
    expected = {"gateway": ("http", 8000, "/_readiness"), "worker": ("web", 6066, "/_readiness"),
                "ops": ("http", 8100, "/_liveness")}
    for component, (port_name, port, readiness) in expected.items():
        container = _container(_one(manifests, "Deployment", f"hw-headwater-{component}"))
        assert container["ports"] == [{"name": port_name, "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/_liveness", "port": port_name}
        assert container["readinessProbe"]["httpGet"] == {"path": readiness, "port": port_name}
    # the worker's readiness is 503 while a dependency is down: it must never be what restarts it
    worker = _container(_one(manifests, "Deployment", "hw-headwater-worker"))
    assert worker["startupProbe"]["httpGet"]["path"] == "/_liveness"
    # each process listens on the pod's address (the settings default to loopback)
    gateway = _container(_one(manifests, "Deployment", "hw-headwater-gateway"))
    assert _env(gateway)["HEADWATER_GATEWAY_HOST"] == "0.0.0.0"
    assert _env(worker)["HEADWATER_WORKER_WEB_HOST"] == "0.0.0.0"
    ops = _container(_one(manifests, "Deployment", "hw-headwater-ops"))
    assert _env(ops)["HEADWATER_OPS_HOST"] == "0.0.0.0"
    assert ops["args"] == ["ops", "--worker-metrics", "http://hw-headwater-worker:6066/metrics"]
    assert _one(manifests, "Service", "hw-headwater-ops")["spec"]["type"] == "ClusterIP"


def test_connections_come_from_secrets_and_every_setting_is_real(helm: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"secretEnv": [{"name": "HOOK_SECRET", "secretName": "hooks", "secretKey": "purchases"}],
              "env": {"HEADWATER_TOKEN_CACHE_SECONDS": 15}, "gateway": {"trustedProxies": ["10.0.0.7"]}}
    manifests = _render(helm, tmp_path, values)
    pods = [m for m in manifests if m["kind"] in {"Deployment", "Job"}]
    assert len(pods) == 4
    for pod in pods:
        env = _env(_container(pod))
        assert env["HEADWATER_KAFKA_BOOTSTRAP"] == "kafka:9092"
        for var, key in [("HEADWATER_POSTGRES_DSN", "postgres-dsn"), ("HEADWATER_REDIS_URL", "redis-url"),
                         ("HEADWATER_CLICKHOUSE_URL", "clickhouse-url")]:
            assert env[var] == {"secretKeyRef": {"name": "headwater-connections", "key": key}}, var
        assert env["HOOK_SECRET"] == {"secretKeyRef": {"name": "hooks", "key": "purchases"}}
        assert env["HEADWATER_TOKEN_CACHE_SECONDS"] == "15"
        assert env["HEADWATER_TOPOLOGY"] == "/etc/headwater/topology.yaml"
        unknown = {name for name in env if name.startswith("HEADWATER_")} - SETTINGS_VARS
        assert not unknown, f"{pod['metadata']['name']}: not settings: {unknown}"
        spec = pod["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
    gateway = _env(_container(_one(manifests, "Deployment", "hw-headwater-gateway")))
    assert gateway["HEADWATER_TRUSTED_PROXIES"] == '["10.0.0.7"]'
    monkeypatch.setenv("HEADWATER_TRUSTED_PROXIES", gateway["HEADWATER_TRUSTED_PROXIES"])
    assert Settings().trusted_proxies == ["10.0.0.7"]  # read as the gateway reads it


def test_migrate_runs_first_as_a_hook(helm: str, tmp_path: Path) -> None:
    manifests = _render(helm, tmp_path)
    job = _one(manifests, "Job", "hw-headwater-migrate")
    hook = _one(manifests, "ConfigMap", "hw-headwater-migrate-topology")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(hook["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert _container(job)["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "topology", "configMap": {"name": "hw-headwater-migrate-topology"}} in volumes
    assert hook["data"] == _one(manifests, "ConfigMap", "hw-headwater-topology")["data"]


def test_scaling_rules_pdbs_and_stopping(helm: str, tmp_path: Path) -> None:
    manifests = _render(helm, tmp_path)
    for component in ("gateway", "worker"):
        deployment = _one(manifests, "Deployment", f"hw-headwater-{component}")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert "replicas" not in deployment["spec"], "the HPA owns the count"
        hpa = _one(manifests, "HorizontalPodAutoscaler", f"hw-headwater-{component}")
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        pdb = _one(manifests, "PodDisruptionBudget", f"hw-headwater-{component}")
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        service = _one(manifests, "Service", f"hw-headwater-{component}")
        assert service["spec"]["selector"].items() <= labels.items()
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/topology"])
    worker_hpa = _one(manifests, "HorizontalPodAutoscaler", "hw-headwater-worker")
    assert worker_hpa["spec"]["maxReplicas"] <= VALUES["topology"]["capturePartitions"]
    worker = _one(manifests, "Deployment", "hw-headwater-worker")
    assert worker["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    gateway = _one(manifests, "Deployment", "hw-headwater-gateway")
    spec = gateway["spec"]["template"]["spec"]
    sleep = _container(gateway)["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > int(sleep[1]) + Settings().produce_timeout_seconds


def test_fixed_counts_and_the_service_monitor(helm: str, tmp_path: Path) -> None:
    values = {"workers": {"autoscaling": {"enabled": False}, "replicas": 3},
              "gateway": {"autoscaling": {"enabled": False}, "replicas": 5},
              "metrics": {"podAnnotations": False, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}}
    manifests = _render(helm, tmp_path, values)
    assert not [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]
    assert _one(manifests, "Deployment", "hw-headwater-worker")["spec"]["replicas"] == 3
    assert _one(manifests, "Deployment", "hw-headwater-gateway")["spec"]["replicas"] == 5
    for component, port in (("gateway", "http"), ("worker", "web")):
        monitor = _one(manifests, "ServiceMonitor", f"hw-headwater-{component}")
        assert monitor["metadata"]["labels"]["release"] == "prom"
        assert monitor["spec"]["endpoints"][0]["port"] == port
        service = _one(manifests, "Service", f"hw-headwater-{component}")
        # the job label the alerts select (deploy/prometheus/alerts.yml) comes from the Service
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == f"headwater-{component}"
        annotations = _one(manifests, "Deployment", f"hw-headwater-{component}")["spec"]["template"]["metadata"][
            "annotations"]
        assert "prometheus.io/scrape" not in annotations


@pytest.mark.parametrize(("values", "message"), [
    ({"workers": {"autoscaling": {"maxReplicas": 5}}}, "maxReplicas (5) is more than the capture topic's 4 partitions"),
    ({"workers": {"autoscaling": {"enabled": False}, "replicas": 6}}, "workers.replicas (6) is more than"),
    ({"topology": {"capturePartitions": 8}, "workers": {"autoscaling": {"maxReplicas": 8}}},
     "topology declares 4 partitions for its capture topic events_raw"),
    ({"topology": {"content": DEFAULT_TOPOLOGY.read_text()}}, "replication_factor 1, less than"),
    ({"connections": {"postgres": {"secretName": ""}}}, "connections.postgres needs secretName and secretKey"),
    ({"gateway": {"preStopSleepSeconds": 60}}, "terminationGracePeriodSeconds must be longer"),
], ids=["workers-over-partitions", "fixed-workers-over-partitions", "partitions-disagree", "replication-1",
        "secret-missing", "grace-too-short"])
def test_the_chart_refuses(helm: str, tmp_path: Path, values: dict[str, Any], message: str) -> None:
    assert message in _refused(helm, tmp_path, values)


def test_a_one_broker_topology_with_more_partitions(helm: str, tmp_path: Path) -> None:
    topology = DEFAULT_TOPOLOGY.read_text().replace("  events_raw:          # envelopes of captured events, "
                                                    "partitioned by token:distinct_id\n    partitions: 4",
                                                    "  events_raw:\n    partitions: 12")
    assert "partitions: 12" in topology
    values = {"topology": {"content": topology, "capturePartitions": 12, "minReplicationFactor": 1},
              "workers": {"autoscaling": {"maxReplicas": 12}}}
    manifests = _render(helm, tmp_path, values)
    assert _one(manifests, "HorizontalPodAutoscaler", "hw-headwater-worker")["spec"]["maxReplicas"] == 12
    assert "partitions: 12" in _one(manifests, "ConfigMap", "hw-headwater-topology")["data"]["topology.yaml"]
