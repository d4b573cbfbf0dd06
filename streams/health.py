"""The worker's ``/_liveness`` and ``/_readiness``: is it running, and do Kafka, Postgres, Redis and every
sink's destination (ClickHouse, ...) answer now.

Liveness answers 200 while the worker's event loop runs. Readiness asks each dependency afresh
(a cheap request each, ``CHECK_TIMEOUT_SECONDS`` at most, answers kept ``CACHE_SECONDS`` so a
probe every second costs little) and answers 200 only when all of them answer, else 503, with
what each said.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from headwater.runtime.connections import CHECK_TIMEOUT_SECONDS
from headwater.runtime.health import Health
from sinks.base import Sink
from streams.resources import WorkerResources

CACHE_SECONDS = 2.0


class WorkerHealth:
    """The readiness of one worker: its Kafka, its Postgres and Redis connections, its running sinks."""

    def __init__(self, kafka: str, resources: WorkerResources, sinks: Mapping[str, Sink]) -> None:
        self._kafka = kafka
        self._resources = resources
        self._sinks = sinks  # the sinks running now, by name (streams.app keeps it)
        self._admin: AdminClient | None = None
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def readiness(self) -> dict[str, Any]:
        """``{"ready": bool, "checks": {name: {"ok", "detail"}}}``; sinks are ``sink:<name>``."""
        if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
            return self._cached[1]
        checks: dict[str, Health] = {"kafka": await self._check_kafka()}
        opened = self._resources.opened
        if opened is None:
            waiting = Health(False, "not connected yet: the pipeline has not started")
            checks.update(postgres=waiting, redis=waiting)
        else:
            checks.update(await opened.connections.check())
        sinks = dict(self._sinks)
        healths = await asyncio.gather(*(self._check_sink(sink) for sink in sinks.values()))
        checks.update({f"sink:{name}": health for name, health in zip(sinks, healths, strict=True)})
        answer = {"ready": all(h.ok for h in checks.values()),
                  "checks": {name: asdict(h) for name, h in checks.items()}}
        self._cached = (time.monotonic(), answer)
        return answer

    async def _check_kafka(self) -> Health:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self._kafka, "log_level": 0})
        admin = self._admin
        try:
            metadata = await asyncio.to_thread(admin.list_topics, timeout=CHECK_TIMEOUT_SECONDS)
        except KafkaException as exc:
            return Health(False, f"Kafka at {self._kafka} does not answer: {exc}")
        return Health(True, f"{len(metadata.brokers)} broker(s) answer")

    @staticmethod
    async def _check_sink(sink: Sink) -> Health:
        try:
            return await asyncio.wait_for(sink.healthcheck(), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            return Health(False, f"no answer within {CHECK_TIMEOUT_SECONDS:.0f}s")
