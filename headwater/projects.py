"""Projects and their API tokens: stored in Postgres, looked up through Redis and a local cache.

The gateway and the worker resolve a token on every request or batch; in steady state that
costs a dict lookup. A miss asks Redis, then Postgres, and caches the answer (an unknown token
too) for ``ttl`` seconds, so a revoked token stops working within ``ttl`` seconds.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from headwater.errors import HeadwaterError


class ProjectLookupError(HeadwaterError):
    """Neither Redis nor Postgres could answer a token lookup."""


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    api_token: str


def new_token() -> str:
    """A project API token in PostHog's style: ``phc_`` and 43 URL-safe characters."""
    return "phc_" + secrets.token_urlsafe(32)


async def create_project(dsn: str, name: str, token: str | None = None) -> Project:
    token = token or new_token()
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        row = await (
            await conn.execute(
                "INSERT INTO projects (name, api_token) VALUES (%s, %s) RETURNING id, name, api_token",
                (name, token),
            )
        ).fetchone()
    assert row is not None
    return Project(**row)


async def list_projects(dsn: str) -> list[Project]:
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        rows = await (
            await conn.execute("SELECT id, name, api_token FROM projects WHERE revoked_at IS NULL ORDER BY id")
        ).fetchall()
    return [Project(**row) for row in rows]


class ProjectResolver:
    """Token → project, cached in process and in Redis, backed by Postgres."""

    REDIS_PREFIX = "headwater:project-token:"

    def __init__(self, postgres_dsn: str, redis_url: str, ttl: float = 30.0) -> None:
        self._pool = AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False,
                                         kwargs={"row_factory": dict_row})
        self._redis = aioredis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._ttl = ttl
        self._local: dict[str, tuple[Project | None, float]] = {}

    async def open(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()
        await self._redis.aclose()

    async def resolve(self, token: str) -> Project | None:
        """The project of ``token``, or None when no live project has it."""
        hit = self._local.get(token)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        project = await self._from_redis_or_postgres(token)
        self._local[token] = (project, now + self._ttl)
        return project

    async def _from_redis_or_postgres(self, token: str) -> Project | None:
        key = self.REDIS_PREFIX + token
        try:
            cached = await self._redis.get(key)
        except aioredis.RedisError:
            cached = None  # Redis is a cache: fall through to Postgres
        if cached is not None:
            doc = orjson.loads(cached)
            return Project(**doc) if doc else None
        project = await self._from_postgres(token)
        try:
            value = orjson.dumps(project.__dict__ if project else None)
            await self._redis.set(key, value, ex=max(1, int(self._ttl)))
        except aioredis.RedisError:
            pass
        return project

    async def _from_postgres(self, token: str) -> Project | None:
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                cur = await conn.execute(
                    "SELECT id, name, api_token FROM projects WHERE api_token = %s AND revoked_at IS NULL",
                    (token,),
                )
                row = await cur.fetchone()
        except (psycopg.Error, TimeoutError) as exc:
            raise ProjectLookupError(f"cannot look up the project token: {exc}") from exc
        return Project(**row) if row else None  # type: ignore[arg-type]
