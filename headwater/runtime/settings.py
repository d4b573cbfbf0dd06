"""Settings: environment variables (prefix ``HEADWATER_``), and the resolved ``Endpoints``.

A connection setting that is not given falls back to the service the local stack
(``headwater up``) started; that resolution belongs to the local stack
(``headwater.stack.endpoints``), and the CLI passes the result to the gateway and the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "headwater"


class Settings(BaseSettings):
    """Everything Headwater reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HEADWATER_", frozen=True, extra="ignore")

    state_dir: Path = Field(
        Path(".headwater"), description="Where the local stack keeps data, logs and its state file."
    )
    cache_dir: Path = Field(default_factory=_default_cache_dir, description="Where `make setup` puts the Kafka jars.")
    kafka_bootstrap: str | None = Field(None, description="host:port[,host:port] of an existing Kafka cluster.")
    kafka_brokers: int | None = Field(
        None, ge=1, le=9, description="How many Kafka brokers `headwater up` runs (KRaft nodes, each broker and "
        "controller); unset: as many as the state dir's cluster was started with, 1 for a new one.")
    postgres_dsn: str | None = Field(None, description="libpq connection string of an existing Postgres.")
    redis_url: str | None = Field(None, description="redis:// URL of an existing Redis.")
    clickhouse_url: str | None = Field(
        None, description="chdb:///path (embedded, served by the local stack), clickhouse://host:9000/db (native) "
        "or http://host:8123/db."
    )
    clickhouse_cluster: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="A ClickHouse cluster's name (remote_servers): migrate creates replicated tables ON CLUSTER "
        "behind Distributed ones, and the sink's inserts wait for every shard.",
    )
    topology: Path = Field(Path("topology.yaml"), description="The topology file the worker and migrate read.")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    worker_web_port: int = 6066
    worker_web_host: str = Field(
        "127.0.0.1", description="Where the worker's web server (/_liveness, /_readiness, /metrics) listens: "
        "loopback unless told otherwise (a container sets 0.0.0.0 so that probes and Prometheus reach it).")
    ops_host: str = Field("127.0.0.1", description="Where the ops page (`headwater ops`) listens: loopback only, "
                                                   "unless told otherwise.")
    ops_port: int = Field(8100, description="The ops page's port.")
    produce_timeout_seconds: float = Field(10.0, gt=0, description="How long the gateway waits for Kafka before a 503.")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses whose X-Forwarded-For the gateway believes (JSON list)."
    )
    body_timeout_seconds: float = Field(
        10.0, gt=0, description="A request whose body stalls this long is answered 408."
    )
    overflow_events_per_second: float = Field(
        100.0, gt=0, description="Events/s one token:distinct_id may send before the rest go to overflow."
    )
    overflow_burst: float = Field(1000.0, gt=0, description="Burst allowance of a key before overflow.")
    token_cache_seconds: float = Field(
        30.0, gt=0, description="How long a token lookup is cached (in process and in Redis)."
    )
    canary_tokens: list[str] = Field(
        default_factory=list, description="Project API tokens the worker sends a canary heartbeat for (JSON list); "
        "none: no canary.")
    canary_seconds: float = Field(60.0, gt=0, description="How often the canary sends its heartbeats.")
    canary_gateway: str | None = Field(
        None, description="The gateway the canary sends to (default: http://<gateway_host>:<gateway_port>).")

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"


@dataclass(frozen=True)
class Endpoints:
    """The four connections every component needs, resolved (see ``headwater.stack.endpoints``), and
    the ClickHouse cluster, if the tables are spread over one (``HEADWATER_CLICKHOUSE_CLUSTER``)."""

    kafka: str
    postgres: str
    redis: str
    clickhouse: str
    clickhouse_cluster: str | None = None
