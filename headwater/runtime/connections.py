"""The connections a process opens once and shares: a Postgres pool and one Redis client.

The gateway and the worker each open one ``Connections`` at start and close it at stop; what
needs Postgres or Redis (the project lookup, quotas, warnings, stages, plugins) is handed the
pool or the client, never a URL. Both are lazy: nothing blocks on a service that is down, and
the first call that needs it raises (and the caller maps it to ``headwater.errors.Unavailable``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from headwater.runtime.health import Health

REDIS_TIMEOUT_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Connections:
    """A Postgres pool (rows as dicts) and a Redis client, owned by one process."""

    postgres: AsyncConnectionPool[Any]
    redis: aioredis.Redis

    @classmethod
    async def open(cls, postgres_dsn: str, redis_url: str, *, pool_size: int = 4) -> Connections:
        """Open both; the pool fills in the background, so a Postgres outage does not block start-up."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            postgres_dsn, min_size=1, max_size=pool_size, open=False, kwargs={"row_factory": dict_row})
        await pool.open(wait=False)
        redis = aioredis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                  socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        return cls(pool, redis)

    async def check(self, timeout: float = CHECK_TIMEOUT_SECONDS) -> dict[str, Health]:
        """Whether Postgres and Redis answer now (one trivial request each, ``timeout`` seconds at most)."""
        async def postgres() -> None:
            async with self.postgres.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")

        async def redis() -> None:
            await self.redis.ping()

        found: dict[str, Health] = {}
        for name, probe in (("postgres", postgres), ("redis", redis)):
            try:
                await asyncio.wait_for(probe(), timeout)
            except Exception as exc:  # noqa: BLE001 - any failure means "not answering", said in the detail
                found[name] = Health(False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            else:
                found[name] = Health(True, "answers")
        return found

    async def close(self) -> None:
        await self.postgres.close()
        await self.redis.aclose()
