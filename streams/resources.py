"""What the worker opens once and shares between its agents: connections, the project lookup, limiters.

Every agent of the worker (the pipeline, each sink, each plugin agent) starts as its own Faust
agent; the first to start opens the resources and the last to stop closes them. Stages and
plugins get what they need through ``StageResources`` (the project lookup and a namespaced
key-value store on the one Redis client); nothing they get is optional, and nothing falls back
to memory in the worker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from headwater.runtime.connections import Connections
from headwater.runtime.projects import ProjectResolver
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import PersonTopics
from streams.outbox import Outbox
from streams.persons.offsets import KafkaTopicIds
from streams.persons.store import PersonStore
from streams.plugins.kv import RedisKeyValue
from streams.stages.base import StageResources
from streams.warnings import WarningLimiter


@dataclass(frozen=True)
class Opened:
    """The worker's resources while at least one agent runs."""

    connections: Connections
    projects: ProjectResolver
    warnings: WarningLimiter

    persons: PersonStore

    def for_stages(self, outbox: Outbox) -> StageResources:
        """What one pipeline agent's stages get; ``outbox`` is that agent's (sent with its batches)."""
        redis = self.connections.redis
        return StageResources(projects=self.projects, kv=lambda namespace: RedisKeyValue(redis, namespace),
                              persons=self.persons, outbox=outbox)


class WorkerResources:
    """Opens ``Opened`` on the first ``acquire`` and closes it on the last ``release``."""

    def __init__(self, endpoints: Endpoints, token_cache_seconds: float, person_topics: PersonTopics | None) -> None:
        self._endpoints = endpoints
        self._token_cache_seconds = token_cache_seconds
        self._person_topics = person_topics
        self._lock = asyncio.Lock()
        self._users = 0
        self._opened: Opened | None = None

    async def acquire(self) -> Opened:
        async with self._lock:
            if self._opened is None:
                connections = await Connections.open(self._endpoints.postgres, self._endpoints.redis)
                self._opened = Opened(
                    connections=connections,
                    projects=ProjectResolver(connections.postgres, connections.redis, self._token_cache_seconds),
                    warnings=WarningLimiter(connections.redis),
                    persons=PersonStore(connections.postgres, connections.redis, self._person_topics,
                                        KafkaTopicIds(self._endpoints.kafka)),
                )
            self._users += 1
            return self._opened

    @property
    def opened(self) -> Opened | None:
        """What is open now (None before the first ``acquire`` and after the last ``release``)."""
        return self._opened

    async def release(self) -> None:
        async with self._lock:
            self._users -= 1
            if self._users == 0 and self._opened is not None:
                opened, self._opened = self._opened, None
                await opened.connections.close()
