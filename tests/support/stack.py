"""The local stack for a test session or a bench run: reused where it runs, stopped only where started."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from headwater.migrate import migrate_clickhouse, migrate_postgres
from headwater.runtime.settings import Endpoints, Settings
from headwater.stack import manager
from headwater.stack.endpoints import resolve_endpoints


def running_services(settings: Settings) -> set[str]:
    """The services that run (or are configured elsewhere) now."""
    return {s.name for s in manager.status(settings) if s.state in {"running", "external"}}


@contextlib.contextmanager
def local_stack(settings: Settings, progress: Callable[[str], None] = lambda _: None,
                keep: bool = False) -> Iterator[Endpoints]:
    """Start what is not running, migrate Postgres and ClickHouse, yield the endpoints; at the end
    stop only the services started here (none with ``keep``). Kafka topics are each run's own."""
    before = running_services(settings)
    progress(f"local stack: already running {sorted(before) or 'nothing'}")
    started = {s.name for s in manager.SERVICES} - before
    try:
        manager.up(settings, progress)
        endpoints = resolve_endpoints(settings)
        migrate_postgres(endpoints.postgres, lambda _: None)
        asyncio.run(migrate_clickhouse(endpoints.clickhouse, lambda _: None))
        yield endpoints
    finally:
        if started and not keep:
            progress(f"stopping what this run started: {', '.join(sorted(started))}")
            manager.down(settings, only=started)
