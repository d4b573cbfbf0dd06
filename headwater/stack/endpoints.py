"""Where each service is: the variable the user set, else what the local stack started."""

from __future__ import annotations

from headwater.errors import NotRunningError
from headwater.runtime.settings import Endpoints, Settings
from headwater.stack.manager import SERVICES
from headwater.stack.state import read_state


def resolve_endpoints(settings: Settings) -> Endpoints:
    """Each connection from its variable, else from the running local stack; ``NotRunningError`` if neither."""
    started = read_state(settings.stack_file)
    given = {
        "kafka": settings.kafka_bootstrap,
        "postgres": settings.postgres_dsn,
        "redis": settings.redis_url,
        "clickhouse": settings.clickhouse_url,
    }
    env_vars = {service.name: service.env_var for service in SERVICES}
    resolved: dict[str, str] = {}
    for name, value in given.items():
        if value:
            resolved[name] = value
        elif name in started:
            resolved[name] = started[name].url
        else:
            raise NotRunningError(
                f"{name} is not configured: run `headwater up` to start the local stack, "
                f"or set {env_vars[name]} to an existing {name}"
            )
    return Endpoints(**resolved)
