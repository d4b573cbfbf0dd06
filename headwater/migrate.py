"""``headwater migrate``: Kafka topics from the topology, the Postgres schema, the ClickHouse tables.

A topic is created with the topology's ``replication_factor``, or ``min(3, brokers)`` when it
gives none, and ``min.insync.replicas`` one fewer (at most 2, at least 1): with three brokers,
a write the gateway's ``acks=all`` producer saw acknowledged is on two of them.

Every step is idempotent: run it after every upgrade and after changing topology.yaml.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewTopic

from headwater.errors import ConfigError, NotRunningError
from headwater.runtime.replication import default_replication, min_insync_replicas
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import Topology
from headwater.runtime.topology.environment import config_drift, topic_config
from headwater.runtime.topology.model import TopicSpec
from schemas import clickhouse as clickhouse_ddl
from schemas import postgres as postgres_ddl
from sinks.clickhouse.client import connect as clickhouse_connect
from sinks.errors import SinkError

Progress = Callable[[str], None]
APPLY_TIMEOUT = 10.0  # seconds for the brokers to show a config change the controller accepted


def topic_replication(name: str, spec: TopicSpec, brokers: int) -> int:
    """The replication factor to create topic ``name`` with in a cluster of ``brokers``: the topology's
    when it gives one, else ``min(3, brokers)``. ``ConfigError`` when the topology asks for more
    copies than the cluster has brokers (Kafka would refuse the topic)."""
    if spec.replication_factor is None:
        return default_replication(brokers)
    if spec.replication_factor > brokers:
        raise ConfigError(
            f"topic {name} asks for replication_factor {spec.replication_factor} but the Kafka cluster has "
            f"{brokers} broker(s): lower it in topology.yaml (or leave it out: min(3, brokers)), or run more "
            "brokers (`headwater up --kafka-brokers 3` for the local stack)")
    return spec.replication_factor


def create_config(spec: TopicSpec, replication: int) -> dict[str, str]:
    """The configs a new topic gets: the topology's (``topic_config``) and ``min.insync.replicas``."""
    return {**topic_config(spec), "min.insync.replicas": str(min_insync_replicas(replication))}


def migrate_kafka(bootstrap: str, topology: Topology, progress: Progress) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        metadata = admin.list_topics(timeout=10)
    except KafkaException as exc:
        raise NotRunningError(f"Kafka at {bootstrap} does not answer: {exc}") from exc
    existing, brokers = metadata.topics, len(metadata.brokers)
    topics = topology.kafka_topics()  # the declared ones and the windows' changelogs
    replication = {name: topic_replication(name, spec, brokers) for name, spec in topics.items()
                   if name not in existing}  # every refusal before any topic is created
    wanted = [
        NewTopic(name, num_partitions=spec.partitions, replication_factor=replication[name],
                 config=create_config(spec, replication[name]))
        for name, spec in topics.items() if name not in existing
    ]
    min_isr: dict[str, dict[str, str]] = {}
    for name, spec in topics.items():
        if name in existing:
            actual = len(existing[name].partitions)
            if actual != spec.partitions:
                raise ConfigError(
                    f"topic {name} has {actual} partitions but the topology declares {spec.partitions}: "
                    "change topology.yaml, or recreate the topic"
                )
            replicas = min((len(p.replicas) for p in existing[name].partitions.values()), default=1)
            min_isr[name] = {"min.insync.replicas": str(min_insync_replicas(replicas))}
            progress(f"kafka: topic {name} exists ({actual} partitions, {replicas} replica(s))")
            if spec.replication_factor is not None and spec.replication_factor != replicas:
                progress(f"kafka: topic {name} has {replicas} replica(s), the topology asks for "
                         f"{spec.replication_factor}: migrate does not move partitions; recreate the topic "
                         "(or reassign its partitions with Kafka's tools)")
    _reconcile_configs(admin, topology, [name for name in topics if name in existing], progress, min_isr)
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                raise ConfigError(f"creating topic {name} failed: {exc}") from exc
            progress(f"kafka: created topic {name} (replication {replication[name]}, "
                     f"min.insync.replicas {min_insync_replicas(replication[name])})")


def _reconcile_configs(admin: AdminClient, topology: Topology, topics: list[str], progress: Progress,
                       also: dict[str, dict[str, str]]) -> None:
    """Set the configs the topology owns (retention, cleanup policy) and ``min.insync.replicas`` (by the
    replicas each topic has) where the broker differs; say what changed."""
    try:
        drift = config_drift(admin, topology, topics, also=also)
    except KafkaException as exc:
        raise ConfigError(f"reading the topics' configs failed: {exc}") from exc
    changes: dict[str, list[ConfigEntry]] = {}
    for d in drift:
        changes.setdefault(d.topic, []).append(
            ConfigEntry(d.key, d.wanted, incremental_operation=AlterConfigOpType.SET))
    if not changes:
        return
    resources = [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
                 for topic, entries in changes.items()]
    for resource, future in admin.incremental_alter_configs(resources).items():
        try:
            future.result()
        except KafkaException as exc:
            raise ConfigError(f"changing the configs of topic {resource.name} failed: {exc}") from exc
    # The controller has the change; each broker applies it a moment later. Return once they show
    # it, so whatever runs next (validate, the worker) sees the configs migrate set.
    deadline = time.monotonic() + APPLY_TIMEOUT
    while config_drift(admin, topology, list(changes), also=also) and time.monotonic() < deadline:
        time.sleep(0.1)
    for d in drift:
        progress(f"kafka: topic {d.topic}: {d.key} {d.actual} → {d.wanted}")


def migrate_postgres(dsn: str, progress: Progress) -> None:
    try:
        conn = psycopg.connect(dsn, autocommit=False)
    except psycopg.Error as exc:
        raise NotRunningError(f"Postgres does not answer: {exc}") from exc
    with conn:
        conn.execute(postgres_ddl.BOOKKEEPING)
        conn.execute("LOCK TABLE headwater_migrations IN EXCLUSIVE MODE")
        done = {row[0] for row in conn.execute("SELECT version FROM headwater_migrations")}
        for version, sql in postgres_ddl.MIGRATIONS:
            if version in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO headwater_migrations (version) VALUES (%s)", (version,))
            progress(f"postgres: applied migration {version}")
        conn.commit()
    progress(f"postgres: schema at version {max(v for v, _ in postgres_ddl.MIGRATIONS)}")


async def migrate_clickhouse(url: str, progress: Progress, cluster: str | None = None) -> None:
    """The tables of ``schemas.clickhouse`` in the layout the server takes: its version picks current or
    legacy types, ``cluster`` (``HEADWATER_CLICKHOUSE_CLUSTER``) replicated tables behind Distributed ones."""
    try:
        client = clickhouse_connect(url, cluster=cluster)
        try:
            server = await client.server()
            database = str((await client.select("SELECT currentDatabase()")).rows[0][0])
            layout = clickhouse_ddl.Layout(legacy=server.legacy, cluster=cluster, database=database)
            statements = clickhouse_ddl.statements(layout)
            for statement in statements:
                await client.command(statement)
        finally:
            await client.aclose()
    except SinkError as exc:
        raise NotRunningError(f"ClickHouse: {exc}") from exc
    except ValueError as exc:  # a database name the DDL cannot name unquoted
        raise ConfigError(f"ClickHouse: {exc}") from exc
    types = "legacy types (DateTime in whole seconds, UInt8 for Bool)" if server.legacy else "current types"
    where = f"on cluster {cluster}" if cluster else "on one node"
    progress(f"clickhouse: {len(clickhouse_ddl.TABLES)} table(s) ready ({len(statements)} statements; "
             f"server {server.version}, {types}, {where})")


async def migrate(endpoints: Endpoints, topology: Topology, progress: Progress) -> None:
    migrate_kafka(endpoints.kafka, topology, progress)
    migrate_postgres(endpoints.postgres, progress)
    await migrate_clickhouse(endpoints.clickhouse, progress, cluster=endpoints.clickhouse_cluster)
