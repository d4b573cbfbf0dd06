"""Key-value stores for plugins: Redis (namespaced per stage) in the worker, a dict in tests."""

from __future__ import annotations

import time

import redis.asyncio as aioredis


class RedisKeyValue:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._prefix = f"headwater:plugin:{namespace}:"

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(self._prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        await self._redis.set(self._prefix + key, value, px=int(ttl_seconds * 1000) if ttl_seconds else None)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def incr(self, key: str, amount: int = 1) -> int:
        return int(await self._redis.incrby(self._prefix + key, amount))


class MemoryKeyValue:
    """For tests and the harness; honours TTLs."""

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
