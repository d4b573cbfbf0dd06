"""The connections a process opens once and shares: a Postgres pool and one Redis client.

The gateway and the worker each open one ``Connections`` at start and close it at stop; what
needs Postgres or Redis (the project lookup, quotas, warnings, stages, plugins) is handed the
pool or the client, never a URL. Both are lazy: nothing blocks on a service that is down, and
the first call that needs it raises (and the caller maps it to ``headwater.errors.Unavailable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

REDIS_TIMEOUT_SECONDS = 1.0


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

    async def close(self) -> None:
        await self.postgres.close()
        await self.redis.aclose()
