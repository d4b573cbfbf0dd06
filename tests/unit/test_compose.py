"""docker-compose.yml agrees with the settings: services, ports and HEADWATER_* variables."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from headwater.runtime.settings import Settings
from tests.conftest import ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTINGS_VARS = {f"HEADWATER_{name.upper()}" for name in Settings.model_fields}


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service]["environment"].items()}


def _container_ports(service: str) -> set[int]:
    ports = {int(p.split(":")[-1]) for p in SERVICES[service].get("ports", [])}
    image = SERVICES[service].get("image", "")
    defaults = {"redis": 6379, "postgres": 5432, "apache/kafka": 9092, "clickhouse/clickhouse-server": 9000}
    ports |= {port for prefix, port in defaults.items() if image.startswith(prefix)}
    return ports


def test_the_whole_stack_is_there() -> None:
    assert {"kafka", "postgres", "redis", "clickhouse", "gateway", "worker", "migrate"} <= set(SERVICES)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:3.9.")
    assert SERVICES["postgres"]["image"] == "postgres:16"
    assert SERVICES["redis"]["image"] == "redis:7"
    assert SERVICES["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:25.")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.parametrize("service", ["gateway", "worker", "migrate"])
def test_headwater_variables_are_settings_and_point_at_services(service: str) -> None:
    env = _env(service)
    assert set(env) <= SETTINGS_VARS, set(env) - SETTINGS_VARS
    for var in ("HEADWATER_KAFKA_BOOTSTRAP", "HEADWATER_POSTGRES_DSN", "HEADWATER_REDIS_URL",
                "HEADWATER_CLICKHOUSE_URL"):
        value = env[var]
        parsed = urlparse(value if "://" in value else f"kafka://{value}")
        assert parsed.hostname in SERVICES, f"{var} points at {parsed.hostname}, not a compose service"
        assert parsed.port in _container_ports(parsed.hostname), f"{var}: {parsed.hostname} has no port {parsed.port}"
    settings = Settings.model_validate({k.removeprefix("HEADWATER_").lower(): v for k, v in env.items()})
    assert settings.kafka_bootstrap == env["HEADWATER_KAFKA_BOOTSTRAP"]


def test_gateway_port_is_published_and_matches_its_setting() -> None:
    port = _env("gateway")["HEADWATER_GATEWAY_PORT"]
    assert f"{port}:{port}" in SERVICES["gateway"]["ports"]
    assert port in SERVICES["gateway"]["command"]
    assert int(port) == Settings.model_fields["gateway_port"].default


def test_clickhouse_credentials_match_the_url() -> None:
    url = urlparse(_env("worker")["HEADWATER_CLICKHOUSE_URL"])
    ch = SERVICES["clickhouse"]["environment"]
    assert (url.username, url.password, url.path.strip("/")) == (
        ch["CLICKHOUSE_USER"], ch["CLICKHOUSE_PASSWORD"], ch["CLICKHOUSE_DB"])
    dsn = urlparse(_env("worker")["HEADWATER_POSTGRES_DSN"])
    pg = SERVICES["postgres"]["environment"]
    assert (dsn.username, dsn.password, dsn.path.strip("/")) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
