"""Scale-out without services: replication by cluster size, the brokers' layout and ports, the apps' names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.cli.run import foreground_plan
from headwater.errors import ConfigError, StackError
from headwater.migrate import create_config, topic_replication
from headwater.runtime.replication import default_replication, min_insync_replicas
from headwater.runtime.settings import Settings
from headwater.runtime.topology import load_topology
from headwater.runtime.topology.model import TopicSpec
from headwater.stack import manager
from headwater.stack.apps import app_counts, app_kind, app_names, instance_names, instance_port, start_apps
from headwater.stack.kafka import (
    Node,
    _properties,
    broker_count,
    cluster_nodes,
    cluster_ports,
    kafka_home,
)
from headwater.stack.state import ServiceRecord, read_state, write_state
from tests.support import DEFAULT_TOPOLOGY, ROOT

GONE = 2**22 + 1  # above pid_max: no such process


@pytest.mark.parametrize(("brokers", "replicas", "min_isr"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_a_topic_without_a_replication_factor_gets_min_3_brokers(brokers: int, replicas: int, min_isr: int) -> None:
    assert topic_replication("t", TopicSpec(), brokers) == default_replication(brokers) == replicas
    assert min_insync_replicas(replicas) == min_isr
    assert create_config(TopicSpec(), replicas)["min.insync.replicas"] == str(min_isr)


@pytest.mark.parametrize(("replicas", "min_isr"), [(1, 1), (2, 1), (3, 2), (4, 2), (7, 2)])
def test_min_insync_replicas_is_one_fewer_capped_at_2_at_least_1(replicas: int, min_isr: int) -> None:
    assert min_insync_replicas(replicas) == min_isr


def test_a_replication_factor_the_topology_gives_is_kept() -> None:
    assert topic_replication("t", TopicSpec(replication_factor=1), 3) == 1
    assert topic_replication("t", TopicSpec(replication_factor=2), 3) == 2


def test_more_replicas_than_brokers_fails_saying_how_many_brokers_there_are() -> None:
    with pytest.raises(ConfigError, match=r"^topic events_raw asks for replication_factor 3 but the Kafka cluster "
                                          r"has 1 broker\(s\)"):
        topic_replication("events_raw", TopicSpec(replication_factor=3), 1)


def test_the_default_topology_leaves_replication_to_the_cluster_and_so_do_its_windows_topics() -> None:
    topics = load_topology(DEFAULT_TOPOLOGY).kafka_topics()
    assert {name: spec.replication_factor for name, spec in topics.items()} == dict.fromkeys(topics)
    assert any("-window-" in name for name in topics)  # the changelogs and repartition topics are among them


def test_a_windows_topics_copy_the_replication_of_their_source(tmp_path: Path) -> None:
    declared = "  events_processed:    # events ready for the sinks\n    partitions: 4\n"
    text = DEFAULT_TOPOLOGY.read_text().replace(declared, declared + "    replication_factor: 2\n")
    assert "replication_factor: 2" in text
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    topology = load_topology(path)
    windows = [w for w in topology.windows if w.source == "events_processed"]
    assert windows
    for window in windows:
        assert topology.kafka_topics()[window.changelog(topology.app_id)].replication_factor == 2


def test_the_broker_count_is_the_setting_else_what_the_data_was_formatted_with(tmp_path: Path) -> None:
    assert broker_count(tmp_path, None) == 1
    assert broker_count(tmp_path, 3) == 3
    home = kafka_home(tmp_path)
    home.mkdir()
    (home / "brokers").write_text("3")
    assert broker_count(tmp_path, None) == 3  # a stack started with 3 restarts with 3
    assert broker_count(tmp_path, 3) == 3
    with pytest.raises(StackError, match=r"belongs to a cluster of 3 broker\(s\), not 1: .*--kafka-brokers 3.*"
                                         r"headwater clean"):
        broker_count(tmp_path, 1)
    with pytest.raises(StackError, match="1 to 9 Kafka brokers, not 12"):
        broker_count(tmp_path, 12)


def test_a_one_node_stack_from_before_the_count_was_kept_is_one_broker(tmp_path: Path) -> None:
    data = kafka_home(tmp_path) / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("node.id=1\n")
    assert broker_count(tmp_path, None) == 1
    with pytest.raises(StackError, match="cluster of 1 broker"):
        broker_count(tmp_path, 3)


def test_one_node_keeps_its_layout_and_a_cluster_has_a_dir_and_log_per_node(tmp_path: Path) -> None:
    home = kafka_home(tmp_path)
    assert cluster_nodes(tmp_path, 1) == [Node(1, home, "kafka", tmp_path / "logs" / "kafka.log")]
    nodes = cluster_nodes(tmp_path, 3)
    assert [(n.node_id, n.name, n.home, n.log.name) for n in nodes] == [
        (i, f"kafka-{i}", home / f"node-{i}", f"kafka-{i}.log") for i in (1, 2, 3)]


def test_each_node_gets_a_client_and_a_controller_port_from_the_base_up() -> None:
    assert cluster_ports(19092, 3, free=lambda p: p) == [(19092, 19093), (19094, 19095), (19096, 19097)]


def test_a_taken_port_is_replaced_by_one_the_kernel_picks_and_none_is_used_twice() -> None:
    handed = iter([40001, 19092, 40002])  # what the "kernel" picks: the second one is already ours

    def free(preferred: int) -> int:
        return next(handed) if preferred in (0, 19094) else preferred

    ports = cluster_ports(19092, 2, free=free)
    assert ports == [(19092, 19093), (40001, 40002)]


def test_a_node_knows_every_voter_and_the_clusters_replication(tmp_path: Path) -> None:
    node = cluster_nodes(tmp_path, 3)[1]
    node.home.mkdir(parents=True)
    voters = "1@127.0.0.1:1,2@127.0.0.1:3,3@127.0.0.1:5"
    props = dict(line.split("=", 1) for line in _properties(node, 2, 3, voters, 3).read_text().splitlines())
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == voters
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:2,CONTROLLER://127.0.0.1:3"
    assert props["log.dirs"] == str(node.home / "data")
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert int(props["broker.session.timeout.ms"]) < 10_000 / 2  # fenced well within the gateway's produce timeout


def test_one_of_a_kind_keeps_its_name_and_several_are_numbered() -> None:
    assert instance_names("gateway", 1) == ["gateway"]
    assert instance_names("worker", 3) == ["worker-1", "worker-2", "worker-3"]
    with pytest.raises(ValueError, match="at least one"):
        instance_names("worker", 0)
    names = ("gateway", "gateway-2", "worker-10", "ops", "kafka", "kafka-1", "gateway-x", "gateway-0")
    assert [app_kind(n) for n in names] == ["gateway", "gateway", "worker", "ops", None, None, None, None]


def test_the_i_th_of_a_kind_prefers_the_settings_port_plus_i_less_one() -> None:
    assert [instance_port(8000, n) for n in ("gateway", "gateway-1", "gateway-2", "gateway-3")] == [
        8000, 8000, 8001, 8002]
    settings = Settings(gateway_port=8000, worker_web_port=6066)
    assert foreground_plan(settings, 2, 3) == [
        ("gateway-1", "gateway", {"HEADWATER_GATEWAY_PORT": "8000"}),
        ("gateway-2", "gateway", {"HEADWATER_GATEWAY_PORT": "8001"}),
        ("worker-1", "worker", {"HEADWATER_WORKER_WEB_PORT": "6066"}),
        ("worker-2", "worker", {"HEADWATER_WORKER_WEB_PORT": "6067"}),
        ("worker-3", "worker", {"HEADWATER_WORKER_WEB_PORT": "6068"}),
    ]
    assert [name for name, _, _ in foreground_plan(settings, 1, 1)] == ["gateway", "worker"]


def test_the_recorded_apps_are_listed_in_start_order_and_counted() -> None:
    records = dict.fromkeys(["kafka", "ops", "worker-2", "gateway-10", "worker-1", "gateway-2", "postgres"], 0)
    assert app_names(records) == ["gateway-2", "gateway-10", "worker-1", "worker-2", "ops"]
    assert app_counts(records) == {"gateway": 2, "worker": 2, "ops": 1}


def test_a_cluster_record_keeps_its_members_through_the_state_file(tmp_path: Path) -> None:
    members = tuple(ServiceRecord(f"kafka-{i}", GONE, 19090 + i, f"127.0.0.1:{19090 + i}", f"kafka-{i}.log")
                    for i in (1, 2, 3))
    record = ServiceRecord("kafka", GONE, 19091, ",".join(m.url for m in members), "kafka-1.log", members=members)
    write_state(tmp_path / "stack.json", {"kafka": record})
    assert read_state(tmp_path / "stack.json") == {"kafka": record}
    assert record.processes == members
    alone = ServiceRecord("redis", GONE, 1, "redis://x", "redis.log")
    assert alone.processes == (alone,)


def _settings(state_dir: Path) -> Settings:
    return Settings(state_dir=state_dir, kafka_bootstrap=None, postgres_dsn=None, redis_url=None,
                    clickhouse_url=None)


def test_status_shows_each_broker_and_a_cluster_with_one_down_as_unhealthy(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    alive = os.getpid()  # a live process; nothing of it answers Kafka on these ports
    members = (ServiceRecord("kafka-1", GONE, 1, "127.0.0.1:1", "kafka-1.log"),
               ServiceRecord("kafka-2", alive, 2, "127.0.0.1:2", "kafka-2.log"))
    write_state(settings.stack_file, {"kafka": ServiceRecord("kafka", GONE, 1, "127.0.0.1:1,127.0.0.1:2",
                                                             "kafka-1.log", members=members)})
    kafka = next(s for s in manager.status(settings) if s.name == "kafka")
    assert kafka.state == "unhealthy"
    assert kafka.url == "127.0.0.1:1,127.0.0.1:2"
    assert [(m.name, m.state) for m in kafka.members or []] == [("kafka-1", "stopped"), ("kafka-2", "unhealthy")]


def test_a_cluster_whose_brokers_all_died_is_stopped(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    members = (ServiceRecord("kafka-1", GONE, 1, "127.0.0.1:1", "a.log"),
               ServiceRecord("kafka-2", GONE, 2, "127.0.0.1:2", "b.log"))
    write_state(settings.stack_file, {"kafka": ServiceRecord("kafka", GONE, 1, "x", "a.log", members=members)})
    assert next(s for s in manager.status(settings) if s.name == "kafka").state == "stopped"


def test_run_detach_refuses_another_count_of_a_kind_that_runs(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    write_state(settings.stack_file, {"gateway": ServiceRecord("gateway", os.getpid(), 8000, "http://x", "g.log")})
    with pytest.raises(StackError, match=r"^gateway run detached, so this is not the count asked for: "
                                         r"`headwater down`"):
        start_apps(settings, ["gateway"], gateways=2)


def test_up_with_another_count_than_the_data_holds_fails_before_starting_anything(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    (state_dir / "kafka").mkdir(parents=True)
    (state_dir / "kafka" / "brokers").write_text("1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    result = subprocess.run([sys.executable, "-m", "headwater.cli", "up", "--kafka-brokers", "3"], check=False,
                            env={**env, "HEADWATER_STATE_DIR": str(state_dir), "COLUMNS": "1000"}, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "belongs to a cluster of 1 broker(s), not 3" in result.stderr
    assert not (state_dir / "stack.json").exists()  # nothing was started, nothing recorded
    assert not (state_dir / "logs").exists()
