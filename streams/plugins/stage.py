"""A plugin as a pipeline stage: converts events in and out, runs sync plugins in threads."""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel

from streams import telemetry
from streams.event import PipelineEvent
from streams.plugins.api import Event, Plugin, PluginContext, PluginMetrics
from streams.plugins.kv import KeyValueStore
from streams.stages.base import Drop, Ok, Outcome


class StageMetrics:
    def __init__(self, stage: str) -> None:
        self._stage = stage

    def count(self, name: str, amount: float = 1.0) -> None:
        telemetry.PLUGIN_EVENTS.labels(self._stage, name).inc(amount)


def to_plugin_event(event: PipelineEvent) -> Event:
    raw = event.raw
    return Event(
        uuid=raw["uuid"], event=raw["event"], distinct_id=raw["distinct_id"], properties=event.properties,
        timestamp=datetime.fromtimestamp(raw["timestamp"] / 1_000_000, tz=UTC), team_id=event.team_id,
        ip=raw["ip"], set=orjson.loads(raw["set"]) if raw["set"] else {},
        set_once=orjson.loads(raw["set_once"]) if raw["set_once"] else {},
    )


def apply_plugin_event(event: PipelineEvent, result: Event) -> None:
    """Write what the plugin changed back into the pipeline event."""
    raw = event.raw
    raw["event"] = result.event
    raw["distinct_id"] = result.distinct_id
    raw["timestamp"] = int(result.timestamp.timestamp() * 1_000_000)
    raw["set"] = orjson.dumps(result.set).decode() if result.set else None
    raw["set_once"] = orjson.dumps(result.set_once).decode() if result.set_once else None
    raw["ip"] = result.ip
    event.properties = result.properties


class PluginStage:
    """Runs ``plugin`` on every event; ``None`` drops it with a warning."""

    def __init__(self, name: str, plugin_cls: type[Plugin[Any]], config: BaseModel, kv: KeyValueStore,
                 metrics: PluginMetrics | None = None) -> None:
        self.name = name
        self.context: PluginContext[Any] = PluginContext(
            config=config, stage=name, log=logging.getLogger(f"headwater.plugins.{name}"), kv=kv,
            metrics=metrics or StageMetrics(name),
        )
        self.plugin = plugin_cls(config, self.context)
        self._is_async = inspect.iscoroutinefunction(self.plugin.process)
        self._ready = False
        self._setup_lock = asyncio.Lock()

    async def _ensure_setup(self) -> None:
        async with self._setup_lock:  # one setup, even if events arrive while it runs
            if not self._ready:
                await self.plugin.setup()
                self._ready = True

    async def process(self, event: PipelineEvent) -> Outcome:
        if not self._ready:
            await self._ensure_setup()
        incoming = to_plugin_event(event)
        if self._is_async:
            result = await self.plugin.process(incoming, self.context)  # type: ignore[misc]
        else:
            result = await asyncio.to_thread(self.plugin.process, incoming, self.context)
        if result is None:
            event.warn("event_dropped_by_transformation", key=self.name, stage=self.name)
            return Drop("dropped_by_plugin")
        if not isinstance(result, Event):
            raise TypeError(f"plugin {self.name} returned {type(result).__name__}, not an Event or None")
        apply_plugin_event(event, result)
        return Ok(event)

    async def close(self) -> None:
        await self.plugin.close()
