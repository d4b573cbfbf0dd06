"""Projects, their API tokens and limits: stored in Postgres, looked up through Redis and a local cache.

The gateway and the worker resolve a token on every request or batch; in steady state that
costs a dict lookup. A miss asks Redis, then Postgres, and caches the answer (an unknown token
too) for ``ttl`` seconds, so a revoked token, a new limit or a new restriction takes effect
within ``ttl`` seconds.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from headwater.errors import ConfigError, Unavailable
from headwater.runtime.restrictions import Restriction


@dataclass(frozen=True)
class Project:
    """A project as the gateway and workers need it: identity, limits and restrictions."""

    id: int
    name: str
    api_token: str
    monthly_event_quota: int | None = None
    rate_limit_per_second: float | None = None
    discard_client_ip: bool = False
    restrictions: tuple[Restriction, ...] = field(default=())

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Project:
        restrictions = tuple(Restriction.from_row(r) for r in row.pop("restrictions", None) or ())
        return cls(**row, restrictions=restrictions)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


_SELECT = """
SELECT p.id, p.name, p.api_token, p.monthly_event_quota, p.rate_limit_per_second, p.discard_client_ip,
       COALESCE((SELECT json_agg(json_build_object('id', r.id, 'action', r.action, 'events', r.events,
                                                   'distinct_ids', r.distinct_ids, 'uuids', r.uuids) ORDER BY r.id)
                 FROM event_restrictions r WHERE r.project_id = p.id), '[]') AS restrictions
FROM projects p
WHERE p.revoked_at IS NULL
"""


MAX_TOKEN_LENGTH = 64


def token_problem(token: str) -> tuple[str, str] | None:
    """What is wrong with a project API token as capture reads it (``(code, message)``), or None.

    The one rule: the gateway refuses such tokens, and ``project create`` refuses to make them.
    """
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or "\x00" in token:
        return "invalid_token", f"the project API token is malformed (at most {MAX_TOKEN_LENGTH} ASCII characters)"
    if token.startswith("phx_"):
        return "personal_api_key", "this is a personal API key; capture needs the project API token (phc_…)"
    return None


def new_project_problem(name: str, token: str | None) -> str | None:
    """Why ``create_project(name, token)`` must refuse, or None: a name and a token people can use."""
    if not name.strip():
        return "a project needs a name"
    if name != name.strip():
        return f"the name {name!r} starts or ends with spaces"
    if token is not None:
        if not token or any(c.isspace() for c in token):
            return f"the token {token!r} is empty or has spaces: SDKs send it as it is"
        problem = token_problem(token)
        if problem is not None:
            return problem[1]
    return None


def new_token() -> str:
    """A project API token in PostHog's style: ``phc_`` and 43 URL-safe characters."""
    return "phc_" + secrets.token_urlsafe(32)


async def _connect(dsn: str) -> psycopg.AsyncConnection[dict[str, Any]]:
    return await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row)


async def create_project(dsn: str, name: str, token: str | None = None) -> Project:
    """A new live project; ``ConfigError`` for a name or token capture could not use, or a taken name."""
    problem = new_project_problem(name, token)
    if problem is not None:
        raise ConfigError(problem)
    token = token or new_token()
    async with await _connect(dsn) as conn:
        taken = await (await conn.execute(_SELECT + " AND p.name = %s", (name,))).fetchone()
        if taken is not None:
            raise ConfigError(f"a project named {name!r} exists already (names must be unique: "
                              "`project update NAME` finds projects by name)")
        try:
            await conn.execute("INSERT INTO projects (name, api_token) VALUES (%s, %s)", (name, token))
        except psycopg.errors.UniqueViolation as exc:
            raise ConfigError(f"a project with the token {token!r} exists already") from exc
        cur = await conn.execute(_SELECT + " AND p.api_token = %s", (token,))
        row = await cur.fetchone()
    assert row is not None
    return Project.from_row(row)


async def list_projects(dsn: str) -> list[Project]:
    async with await _connect(dsn) as conn:
        rows = await (await conn.execute(_SELECT + " ORDER BY p.id")).fetchall()
    return [Project.from_row(row) for row in rows]


async def find_project(dsn: str, ref: str) -> Project:
    """A live project by id, token or name; ``ConfigError`` when none or several match."""
    async with await _connect(dsn) as conn:
        rows = await (await conn.execute(
            _SELECT + " AND (p.id::text = %(r)s OR p.api_token = %(r)s OR p.name = %(r)s)", {"r": ref}
        )).fetchall()
    if not rows:
        raise ConfigError(f"no project {ref!r}: `headwater project list` shows them")
    if len(rows) > 1:
        raise ConfigError(f"{len(rows)} projects are named {ref!r}: use the id or the token")
    return Project.from_row(rows[0])


async def update_project(dsn: str, project_id: int, **changes: object) -> Project:
    """Set limits or settings (``monthly_event_quota``, ``rate_limit_per_second``, ``discard_client_ip``)."""
    allowed = {"monthly_event_quota", "rate_limit_per_second", "discard_client_ip", "name"}
    unknown = set(changes) - allowed
    if unknown:
        raise ConfigError(f"cannot change {', '.join(sorted(unknown))}")
    async with await _connect(dsn) as conn:
        for column, value in changes.items():
            await conn.execute(
                sql.SQL("UPDATE projects SET {} = %s WHERE id = %s").format(sql.Identifier(column)),
                (value, project_id),
            )
        row = await (await conn.execute(_SELECT + " AND p.id = %s", (project_id,))).fetchone()
    if row is None:
        raise ConfigError(f"no live project with id {project_id}")
    return Project.from_row(row)


async def revoke_project(dsn: str, project_id: int) -> None:
    async with await _connect(dsn) as conn:
        await conn.execute("UPDATE projects SET revoked_at = now() WHERE id = %s", (project_id,))


class ProjectResolver:
    """Token → project, cached in process and in Redis, backed by Postgres.

    Uses the process's ``Connections`` (it owns neither the pool nor the client).
    """

    REDIS_PREFIX = "headwater:project-token:"
    LOCAL_MAX = 10_000

    def __init__(self, postgres: AsyncConnectionPool[Any], redis: aioredis.Redis, ttl: float = 30.0) -> None:
        self._pool = postgres
        self._redis = redis
        self._ttl = ttl
        self._local: OrderedDict[str, tuple[Project | None, float]] = OrderedDict()

    async def resolve(self, token: str) -> Project | None:
        """The project of ``token``, or None when no live project has it.

        Raises ``Unavailable`` (code ``projects_unavailable``) when neither Redis nor Postgres answers.
        """
        hit = self._local.get(token)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        project = await self._from_redis_or_postgres(token)
        self._local[token] = (project, now + self._ttl)
        self._local.move_to_end(token)
        if len(self._local) > self.LOCAL_MAX:  # random tokens must not grow memory without bound
            self._local.popitem(last=False)
        return project

    async def _from_redis_or_postgres(self, token: str) -> Project | None:
        key = self.REDIS_PREFIX + token
        try:
            cached = await self._redis.get(key)
        except aioredis.RedisError:
            cached = None  # Redis is a cache: fall through to Postgres
        if cached is not None:
            doc = orjson.loads(cached)
            return Project.from_row(doc) if doc else None
        project = await self._from_postgres(token)
        with contextlib.suppress(aioredis.RedisError):
            await self._redis.set(key, project.to_json() if project else b"null", ex=max(1, int(self._ttl)))
        return project

    async def _from_postgres(self, token: str) -> Project | None:
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                cur = await conn.execute(_SELECT + " AND p.api_token = %s", (token,))
                row: dict[str, Any] | None = await cur.fetchone()
        except (psycopg.Error, TimeoutError) as exc:
            raise Unavailable(f"cannot look up the project token: {exc}", "projects_unavailable") from exc
        return Project.from_row(row) if row else None
