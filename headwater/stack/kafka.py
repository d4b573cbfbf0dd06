"""Kafka 3.9 as KRaft nodes (each a broker and a controller) run from its jars: one, or a cluster of several.

The jars are the runtime dependencies of ``kafka-pom.xml``, copied by Maven into the cache
dir once (``make setup``). Storage is formatted once; then ``kafka.Kafka`` runs.
"""

from __future__ import annotations

import base64
import functools
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from headwater.errors import StackError
from headwater.runtime.replication import default_replication, min_insync_replicas
from headwater.stack.process import pick_port, pid_alive, port_answers, spawn, terminate, wait_until
from headwater.stack.service import StackContext
from headwater.stack.state import ServiceRecord

POM = Path(__file__).with_name("kafka-pom.xml")
HEAP = "-Xmx768m"
MAX_BROKERS = 9
BROKER_SESSION_MS = 3000  # a cluster's nodes: see _properties


def kafka_version() -> str:
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if found is None:
        raise StackError(f"{POM} names no <kafka.version>")
    return found.group(1)


def jar_dir(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{kafka_version()}"


def ensure_jars(cache_dir: Path, *, quiet: bool = False) -> Path:
    """Copy the broker's jars from Maven Central into the cache, once; return their folder."""
    target = jar_dir(cache_dir)
    marker = target / ".complete"
    if marker.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven is not installed: run `make setup` (or `apt-get install maven`)")
    target.mkdir(parents=True, exist_ok=True)
    cmd = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={target}",
           "-DincludeScope=runtime"]
    if quiet:
        cmd.insert(1, "-q")
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise StackError(f"fetching the Kafka jars with Maven failed (exit {done.returncode})")
    marker.write_text(kafka_version())
    return target


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64, never starting with ``-``.

    Kafka's own ``Uuid.randomUuid`` refuses ids that start with ``-`` too: on a command line
    such an id reads as an option (1 id in 64 would).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _cluster_id(home: Path) -> str:
    path = home / "cluster.id"
    if not path.exists() or path.read_text().strip().startswith("-"):
        path.write_text(new_cluster_id())
    return path.read_text().strip()


def kafka_home(state_dir: Path) -> Path:
    return (state_dir / "kafka").resolve()


def formatted_brokers(home: Path) -> int | None:
    """How many brokers the cluster in ``home`` was formatted with; None before the first start."""
    marker = home / "brokers"
    if marker.exists():
        return int(marker.read_text().strip())
    if (home / "data" / "meta.properties").exists():  # a one-node stack from before the count was kept
        return 1
    return None


def broker_count(state_dir: Path, wanted: int | None) -> int:
    """The brokers to run: ``wanted`` (``HEADWATER_KAFKA_BROKERS``), else as many as the state dir's
    cluster was formatted with, else 1. ``StackError`` when ``wanted`` is not what the data holds:
    a KRaft cluster's voters are fixed when its storage is formatted."""
    if wanted is not None and not 1 <= wanted <= MAX_BROKERS:
        raise StackError(f"the local stack runs 1 to {MAX_BROKERS} Kafka brokers, not {wanted}")
    home = kafka_home(state_dir)
    formatted = formatted_brokers(home)
    if formatted is not None and wanted is not None and wanted != formatted:
        raise StackError(
            f"the Kafka data in {home} belongs to a cluster of {formatted} broker(s), not {wanted}: start it "
            f"with --kafka-brokers {formatted} (or HEADWATER_KAFKA_BROKERS={formatted}), or run `headwater clean` "
            "to delete the local stack's data and start again with another count")
    return wanted or formatted or 1


@dataclass(frozen=True)
class Node:
    """One KRaft node (broker and controller) of the local cluster: its files and its name."""

    node_id: int
    home: Path  # its server.properties and data dir
    name: str  # "kafka" alone, "kafka-1" … in a cluster of several
    log: Path


def cluster_nodes(state_dir: Path, brokers: int) -> list[Node]:
    """A one-node stack keeps the layout it always had (``kafka/data``, ``logs/kafka.log``); a
    cluster's node i lives in ``kafka/node-i`` and logs to ``logs/kafka-i.log``."""
    home, logs = kafka_home(state_dir), state_dir / "logs"
    if brokers == 1:
        return [Node(1, home, "kafka", logs / "kafka.log")]
    return [Node(i, home / f"node-{i}", f"kafka-{i}", logs / f"kafka-{i}.log") for i in range(1, brokers + 1)]


def cluster_ports(base: int, brokers: int, free: Callable[[int], int] = pick_port) -> list[tuple[int, int]]:
    """A (client, controller) port pair per node: ``base``, ``base + 1`` for the first, the next two
    for the second, and so on, each a free one the kernel picks where the preferred one is taken."""
    taken: set[int] = set()

    def one(preferred: int) -> int:
        port = free(preferred if preferred not in taken else 0)
        while port in taken:
            port = free(0)
        taken.add(port)
        return port

    pairs = []
    for i in range(brokers):
        client = one(base + 2 * i if base else 0)
        pairs.append((client, one(client + 1)))
    return pairs


def _properties(node: Node, port: int, controller_port: int, voters: str, brokers: int) -> Path:
    replicas = default_replication(brokers)
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.home / "data"),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_insync_replicas(replicas)),
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_insync_replicas(replicas)),
        "transaction.state.log.num.partitions": "1",  # a small cluster: 50 partitions only slow the first producer
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(8 * 1024 * 1024),
        "log.retention.hours": "168",
    }
    if brokers > 1:
        # A broker that dies without a word is fenced, and its partitions led elsewhere, once its
        # session expires: 9 s by default, about the gateway's 10 s produce timeout. A few seconds
        # keep the capture path answering 200 while a local cluster loses a broker.
        lines["broker.session.timeout.ms"] = str(BROKER_SESSION_MS)
        lines["broker.heartbeat.interval.ms"] = str(BROKER_SESSION_MS // 6)
    path = node.home / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    return path


def _log4j(home: Path) -> Path:
    path = home / "log4j.properties"
    path.write_text(
        "log4j.rootLogger=WARN, stdout\n"
        "log4j.logger.kafka=INFO\n"
        "log4j.logger.org.apache.kafka=WARN\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    )
    return path


def metadata_answers(bootstrap: str, timeout: float = 1.0) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request."""
    addresses = [hostport.rsplit(":", 1) for hostport in bootstrap.split(",")]
    if all(len(a) == 2 and a[1].isdigit() for a in addresses) and \
            not any(port_answers(int(a[1]), a[0]) for a in addresses):
        return False  # none listening yet: skip the client, which would log every refused connect
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000), "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not answering yet"
        return False
    return True


def producer_ids_ready(bootstrap: str) -> bool:
    """True once the broker hands out producer ids, which idempotent producers need first.

    Right after a start the transaction coordinator is still loading, and an idempotent
    producer's first messages wait for it ("Coordinator load in progress"), long enough to
    time out a request. A transactional init succeeds only once it is ready.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "headwater-stack-readiness",
                         "log_level": 0})
    try:
        producer.init_transactions(5.0)
    except KafkaException:
        return False
    return True


OFFSETS_PARTITIONS = 4  # offsets.topic.num.partitions below


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` of ``text`` (Kafka places a group by it)."""
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group: str, partitions: int = OFFSETS_PARTITIONS) -> int:
    """The ``__consumer_offsets`` partition whose leader coordinates ``group``: ``abs(hashCode) % partitions``."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def readiness_groups(partitions: int = OFFSETS_PARTITIONS) -> list[str]:
    """A group name per ``__consumer_offsets`` partition, so asking about them all reaches every coordinator."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        name = f"headwater-stack-readiness-{i}"
        found.setdefault(offsets_partition(name, partitions), name)
        i += 1
    return [found[p] for p in range(partitions)]


def group_coordinators_ready(bootstrap: str) -> bool:
    """True once every group coordinator has loaded its ``__consumer_offsets`` partition.

    On a new cluster the offsets topic is created by the first client asking for a coordinator,
    and its partitions' leaders then load them. Until they have, offset requests fail with
    "coordinator load in progress", and librdkafka's admin client can crash the process on
    that answer to ``list_consumer_group_offsets`` (what ``headwater lag`` and ``status`` ask).
    Describing a group per partition (which takes the other path) waits that out at start.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        for future in admin.describe_consumer_groups(readiness_groups(), request_timeout=5).values():
            future.result()
    except KafkaException:
        return False
    return True


class KafkaService:
    """Kafka as ``StackContext.kafka_brokers`` KRaft nodes, each broker and controller (``broker_count``).

    One node is one record, as it always was. Several are one record (``kafka``, whose ``url`` is
    the bootstrap list) with a member per node: ``status`` shows each, ``down`` stops each, and
    ``up`` starts again the ones that died (``restart_members``).
    """

    name = "kafka"
    env_var = "HEADWATER_KAFKA_BOOTSTRAP"
    default_port = 19092

    def start(self, ctx: StackContext, port: int) -> ServiceRecord:
        jars = ensure_jars(ctx.cache_dir)
        brokers = broker_count(ctx.state_dir, ctx.kafka_brokers)
        home = kafka_home(ctx.state_dir)
        home.mkdir(parents=True, exist_ok=True)
        nodes = cluster_nodes(ctx.state_dir, brokers)
        ports = cluster_ports(port, brokers)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{c}" for n, (_, c) in zip(nodes, ports, strict=True))
        for node, (client, controller) in zip(nodes, ports, strict=True):
            node.home.mkdir(parents=True, exist_ok=True)
            _properties(node, client, controller, voters, brokers)
        self._format(home, jars, [n for n in nodes if not (n.home / "data" / "meta.properties").exists()])
        (home / "brokers").write_text(str(brokers))
        members = [self._spawn(jars, node, client) for node, (client, _) in zip(nodes, ports, strict=True)]
        record = (members[0] if brokers == 1 else
                  replace(members[0], name=self.name, url=",".join(m.url for m in members), members=tuple(members)))
        try:
            self._wait_ready(record)
        except StackError:
            self.stop(ctx, record)  # leave no node of a cluster that did not start
            raise
        return record

    def restart_members(self, ctx: StackContext, record: ServiceRecord) -> ServiceRecord:
        """Start again, with their own ports and files, the members of ``record`` that died."""
        jars = jar_dir(ctx.cache_dir)
        nodes = {n.name: n for n in cluster_nodes(ctx.state_dir, len(record.members))}
        members = tuple(m if pid_alive(m.pid) else self._spawn(jars, nodes[m.name], m.port) for m in record.members)
        restarted = replace(record, pid=members[0].pid, members=members)
        self._wait_ready(restarted)
        return restarted

    def _format(self, home: Path, jars: Path, nodes: list[Node]) -> None:
        """Format the storage of ``nodes`` (the ones never formatted), all with the cluster's id, at once."""
        running = [(n, subprocess.Popen([*_java(jars, n), "kafka.tools.StorageTool", "format",
                                         f"--cluster-id={_cluster_id(home)}", "-c", str(n.home / "server.properties")],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                   for n in nodes]
        failed = []
        for node, proc in running:
            output, _ = proc.communicate()
            if proc.returncode != 0:
                failed.append(f"{node.name}: {output.strip()}")
        if failed:
            raise StackError("formatting Kafka storage failed: " + "\n".join(failed))

    def _spawn(self, jars: Path, node: Node, port: int) -> ServiceRecord:
        pid = spawn([*_java(jars, node), "kafka.Kafka", str(node.home / "server.properties")], node.log)
        return ServiceRecord(node.name, pid, port, f"127.0.0.1:{port}", str(node.log))

    def _wait_ready(self, record: ServiceRecord) -> None:
        for member in record.processes:
            wait_until(member.name, functools.partial(self.healthy, member), pid=member.pid, log=member.log_path,
                       timeout=90)
        wait_until("kafka's producer-id coordinator", lambda: producer_ids_ready(record.url), pid=record.pid,
                   log=record.log_path, timeout=90)
        wait_until("kafka's group coordinators", lambda: group_coordinators_ready(record.url), pid=record.pid,
                   log=record.log_path, timeout=90)

    def healthy(self, record: ServiceRecord) -> bool:
        return metadata_answers(record.url)

    def stop(self, ctx: StackContext, record: ServiceRecord) -> None:
        """Stop every node at once: one by one, the last ones would wait for a quorum already gone."""
        with ThreadPoolExecutor(max_workers=len(record.processes)) as pool:
            list(pool.map(lambda m: terminate(m.pid, timeout=30), record.processes))


def _java(jars: Path, node: Node) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise StackError("java is not installed: run `make setup` (or `apt-get install openjdk-17-jre-headless`)")
    return [java, HEAP, f"-Dlog4j.configuration=file:{_log4j(node.home)}", "-cp", f"{jars}/*"]
