"""Kafka 3.9 as one KRaft node (broker and controller) run from its jars.

The jars are the runtime dependencies of ``kafka-pom.xml``, copied by Maven into the cache
dir once (``make setup``). Storage is formatted once; then ``kafka.Kafka`` runs.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from headwater.errors import StackError
from headwater.stack.process import pick_port, port_answers, spawn, terminate, wait_until
from headwater.stack.service import StackContext
from headwater.stack.state import ServiceRecord

POM = Path(__file__).with_name("kafka-pom.xml")
HEAP = "-Xmx768m"


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


def _properties(home: Path, port: int, controller_port: int) -> Path:
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(home / "data"),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",  # one node: 50 partitions only slow the first producer
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(8 * 1024 * 1024),
        "log.retention.hours": "168",
    }
    path = home / "server.properties"
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
    first = bootstrap.split(",", maxsplit=1)[0].rsplit(":", 1)
    if len(first) == 2 and first[1].isdigit() and not port_answers(int(first[1]), first[0]):
        return False  # not listening yet: skip the client, which would log every refused connect
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


class KafkaService:
    name = "kafka"
    env_var = "HEADWATER_KAFKA_BOOTSTRAP"
    default_port = 19092

    def start(self, ctx: StackContext, port: int) -> ServiceRecord:
        jars = ensure_jars(ctx.cache_dir)
        home = (ctx.state_dir / "kafka").resolve()
        home.mkdir(parents=True, exist_ok=True)
        controller_port = pick_port(port + 1)
        props = _properties(home, port, controller_port)
        log4j = _log4j(home)
        java = shutil.which("java")
        if java is None:
            raise StackError("java is not installed: run `make setup` (or `apt-get install openjdk-17-jre-headless`)")
        base = [java, HEAP, f"-Dlog4j.configuration=file:{log4j}", "-cp", f"{jars}/*"]
        if not (home / "data" / "meta.properties").exists():
            fmt = [*base, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id(home)}", "-c", str(props)]
            done = subprocess.run(fmt, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StackError(f"formatting Kafka storage failed: {done.stderr.strip() or done.stdout.strip()}")
        log = ctx.logs / "kafka.log"
        pid = spawn([*base, "kafka.Kafka", str(props)], log)
        record = ServiceRecord(self.name, pid, port, f"127.0.0.1:{port}", str(log))
        wait_until("kafka", lambda: self.healthy(record), pid=pid, log=log, timeout=90)
        wait_until("kafka's producer-id coordinator", lambda: producer_ids_ready(record.url), pid=pid, log=log,
                   timeout=90)
        return record

    def healthy(self, record: ServiceRecord) -> bool:
        return metadata_answers(record.url)

    def stop(self, ctx: StackContext, record: ServiceRecord) -> None:
        terminate(record.pid, timeout=30)
