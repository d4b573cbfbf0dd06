"""Where each service is: the variable the user set, else what the local stack started.

A command resolves only the services it uses (``resolve_service``); the gateway, the worker and
``migrate`` use all four (``resolve_endpoints``). When a service is neither set nor running, the
error names it and says whether the local stack is stopped or was never started here.
"""

from __future__ import annotations

from headwater.errors import NotRunningError
from headwater.runtime.settings import Endpoints, Settings
from headwater.stack.manager import SERVICES, alive
from headwater.stack.state import read_state

SERVICE_NAMES = ("kafka", "postgres", "redis", "clickhouse")


def _given(settings: Settings, name: str) -> str | None:
    return {
        "kafka": settings.kafka_bootstrap,
        "postgres": settings.postgres_dsn,
        "redis": settings.redis_url,
        "clickhouse": settings.clickhouse_url,
    }[name]


def resolve_service(settings: Settings, name: str) -> str:
    """The connection of service ``name`` from its variable, else from the running local stack.

    ``NotRunningError`` if neither: "stopped" when the local stack ran here before (its state
    file exists), "not configured" when it never did.
    """
    given = _given(settings, name)
    if given:
        return given
    record = read_state(settings.stack_file).get(name)
    if record is not None and alive(record):
        return record.url
    env_var = next(service.env_var for service in SERVICES if service.name == name)
    alternative = f"or set {env_var} to an existing {name}"
    if record is not None:
        raise NotRunningError(f"{name} of the local stack has stopped (pid {record.pid} exited; log {record.log}): "
                              f"run `headwater up` to start it again, {alternative}")
    if settings.stack_file.exists():
        raise NotRunningError(f"{name} is stopped: the local stack in {settings.state_dir} is down; "
                              f"run `headwater up` to start it, {alternative}")
    raise NotRunningError(f"{name} is not configured: run `headwater up` to start the local stack, {alternative}")


def resolve_endpoints(settings: Settings) -> Endpoints:
    """All four connections (the gateway, the worker, ``migrate``); see ``resolve_service``."""
    return Endpoints(**{name: resolve_service(settings, name) for name in SERVICE_NAMES},
                     clickhouse_cluster=settings.clickhouse_cluster)
