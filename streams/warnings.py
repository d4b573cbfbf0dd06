"""Ingestion warnings: collected from stages, limited to one per (team, type, key) an hour, sent on.

The limit is kept in Redis (``SET NX`` with a one-hour expiry) so every worker shares it.
When Redis cannot answer, warnings are sent anyway: a duplicate warning is better than a lost one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis

from schemas.events import IngestionWarning
from streams.event import PipelineEvent

WINDOW_SECONDS = 3600


class WarningLimiter:
    """Admits each warning once per hour for its team, type and key, across every worker (Redis ``SET NX``)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def admit(self, events: Sequence[PipelineEvent]) -> list[IngestionWarning]:
        """The warnings of ``events`` not already sent this hour for the same team, type and key."""
        candidates: list[tuple[str, IngestionWarning]] = []
        now = time.time_ns() // 1000
        for event in events:
            if event.team_id is None:
                continue  # before resolve_project there is no team to warn
            for warning in event.warnings:
                key = f"headwater:warning:{event.team_id}:{warning.type}:{warning.key}"
                candidates.append((key, IngestionWarning(
                    team_id=event.team_id, type=warning.type, source=str(warning.details.get("stage", "worker")),
                    event_uuid=event.raw["uuid"], details=orjson.dumps(warning.details).decode(), timestamp=now,
                )))
        if not candidates:
            return []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, _ in candidates:
                    pipe.set(key, b"1", nx=True, ex=WINDOW_SECONDS)
                admitted = await pipe.execute()
        except aioredis.RedisError:
            return [w for _, w in candidates]
        seen: set[str] = set()
        out: list[IngestionWarning] = []
        for (key, record), fresh in zip(candidates, admitted, strict=True):
            if fresh and key not in seen:
                out.append(record)
            seen.add(key)
        return out
