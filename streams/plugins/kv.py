"""Key-value stores for plugins: Redis (namespaced per stage) in the worker, a dict for tests.

Redis errors become ``headwater.errors.Unavailable`` here, once: the stage runner retries the
event as it does for any stage whose dependency is down, instead of applying the plugin's
``on_error`` policy to an outage.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis

from headwater.errors import Unavailable


class KeyValueStore(Protocol):
    """A small key-value store per plugin (Redis in the worker, a dict in tests). Values are strings.

    Raises ``headwater.errors.Unavailable`` when the store cannot answer now.
    """

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int = 1) -> int: ...


class RedisKeyValue:
    """Keys under ``headwater:plugin:<namespace>:`` in the worker's one Redis client."""

    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._prefix = f"headwater:plugin:{namespace}:"

    async def get(self, key: str) -> str | None:
        try:
            value = await self._redis.get(self._prefix + key)
        except aioredis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}", "redis_unavailable") from exc
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        try:
            await self._redis.set(self._prefix + key, value, px=int(ttl_seconds * 1000) if ttl_seconds else None)
        except aioredis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}", "redis_unavailable") from exc

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except aioredis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}", "redis_unavailable") from exc

    async def incr(self, key: str, amount: int = 1) -> int:
        try:
            return int(await self._redis.incrby(self._prefix + key, amount))
        except aioredis.RedisError as exc:
            raise Unavailable(f"Redis: {exc}", "redis_unavailable") from exc


class MemoryKeyValue:
    """For tests, the plugin harness and ``topology test``; honours TTLs."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[str, float | None]] = {}

    async def get(self, key: str) -> str | None:
        item = self.data.get(key)
        if item is None or (item[1] is not None and item[1] < time.monotonic()):
            return None
        return item[0]

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        self.data[key] = (value, time.monotonic() + ttl_seconds if ttl_seconds else None)

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def incr(self, key: str, amount: int = 1) -> int:
        value = int(await self.get(key) or 0) + amount
        expires = self.data.get(key, ("", None))[1]
        self.data[key] = (str(value), expires)
        return value
