"""Limits at the edge: per-project rate limits (429), monthly quotas (drop, still 200), hot keys.

- ``RateLimiter``: a token bucket per project, ``rate_limit_per_second`` events/s with a burst
  of ``burst_seconds`` worth; a request that does not fit is answered 429 whole. Per gateway
  process: with N replicas the effective limit is N times the setting.
- ``QuotaTracker``: events accepted per project and calendar month (UTC), counted in Redis
  across replicas. Counts are batched in process and flushed every ``flush_seconds``, so a
  project can pass its quota by at most what the replicas accept in that time. Over quota,
  events are dropped and counted, and the answer is still 200 (what PostHog does).
- ``HotKeys``: a token bucket per ``token:distinct_id`` (default 100 events/s, burst 1000);
  events beyond it go to the overflow topic without a key, so one noisy user cannot stall a
  partition. Idle buckets are evicted beyond ``max_keys``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime

import redis.asyncio as aioredis

from headwater.runtime.projects import Project

log = logging.getLogger("headwater.gateway")


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class RateLimiter:
    def __init__(self, burst_seconds: float = 10.0) -> None:
        self._burst_seconds = burst_seconds
        self._buckets: dict[int, TokenBucket] = {}

    def allow(self, project: Project, events: int) -> bool:
        rate = project.rate_limit_per_second
        if rate is None:
            return True
        bucket = self._buckets.get(project.id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[project.id] = TokenBucket(rate, max(rate * self._burst_seconds, 1.0))
        return bucket.take(events)


class HotKeys:
    def __init__(self, rate: float = 100.0, burst: float = 1000.0, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: dict[bytes, TokenBucket] = {}

    def is_hot(self, key: bytes) -> bool:
        """Count one event for ``key``; True when the key is over its rate."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_idle()
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst)
        return not bucket.take()

    def _forget_idle(self) -> None:
        """Drop keys whose bucket has refilled (they hold no state worth keeping)."""
        now = time.monotonic()
        full_after = self._burst / self._rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}
        if len(self._buckets) >= self._max_keys:  # all busy: forget the oldest half
            keep = sorted(self._buckets.items(), key=lambda kv: kv[1].updated)[self._max_keys // 2:]
            self._buckets = dict(keep)


def _month() -> str:
    return f"{datetime.now(UTC):%Y%m}"


class QuotaTracker:
    """Monthly event counts per project in Redis; see the module docstring."""

    def __init__(self, redis: aioredis.Redis, flush_seconds: float = 1.0) -> None:
        self._redis = redis
        self._flush_seconds = flush_seconds
        self._pending: defaultdict[int, int] = defaultdict(int)
        self._totals: dict[int, tuple[str, int]] = {}  # project → (month, events counted in Redis)
        self._task: asyncio.Task[None] | None = None

    def over_quota(self, project: Project) -> bool:
        quota = project.monthly_event_quota
        if quota is None:
            return False
        month, total = self._totals.get(project.id, ("", 0))
        counted = total if month == _month() else 0
        return counted + self._pending.get(project.id, 0) >= quota

    def count(self, project: Project, events: int) -> None:
        if project.monthly_event_quota is not None and events:
            self._pending[project.id] += events

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(int)
        if not pending:
            return
        month = _month()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for project_id, n in pending.items():
                    key = f"headwater:quota:{project_id}:{month}"
                    pipe.incrby(key, n)
                    pipe.expire(key, 40 * 24 * 3600)
                results = await pipe.execute()
        except aioredis.RedisError as exc:
            log.warning("quota counts could not reach Redis, keeping them for the next flush: %s", exc)
            for project_id, n in pending.items():
                self._pending[project_id] += n
            return
        for project_id, total in zip(pending, results[::2], strict=True):
            self._totals[project_id] = (month, int(total))
