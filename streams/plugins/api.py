"""The plugin API: what a plugin author writes against.

A plugin is a class with a typed config model and one method::

    class AddPlan(Plugin[AddPlan.Config]):
        name = "add_plan"

        class Config(BaseModel):
            plan: str = "free"

        async def process(self, event: Event, ctx: PluginContext) -> Event | None:
            event.properties.setdefault("plan", self.config.plan)
            return event

``process`` may be ``async def`` or a plain ``def`` (then it runs in a thread pool, so it may
block). Returning ``None`` drops the event (counted, and recorded as the ingestion warning
``event_dropped_by_transformation``). Raising, or taking longer than the stage's
``timeout_seconds``, applies the stage's ``on_error`` policy; a slow plugin never stalls
other keys for longer than that timeout. The runner calls ``setup`` once before the first
event and ``close`` once when the worker stops.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from streams.plugins.kv import KeyValueStore


class NoSettings(BaseModel):
    """The config of a plugin that has no settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=BaseModel)


@dataclass
class Event:
    """An event as a plugin sees it. Change it in place and return it, or return a new one."""

    uuid: str
    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime
    team_id: int | None = None
    ip: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    set_once: dict[str, Any] = field(default_factory=dict)


class PluginMetrics(Protocol):
    """Counters a plugin may bump; they appear as ``headwater_plugin_events_total{stage, name}``."""

    def count(self, name: str, amount: float = 1.0) -> None: ...


@dataclass(frozen=True)
class PluginContext(Generic[ConfigT]):
    """What a plugin gets besides the event: its config, a logger, a key-value store, metrics."""

    config: ConfigT
    stage: str
    log: logging.Logger
    kv: KeyValueStore
    metrics: PluginMetrics


class Plugin(Generic[ConfigT]):
    """Base class of plugins. Set ``name`` and ``Config``; implement ``process``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, config: ConfigT, ctx: PluginContext[ConfigT]) -> None:
        self.config = config
        self.ctx = ctx

    async def setup(self) -> None:
        """Called once before the first event (open files, warm caches)."""

    def process(self, event: Event, ctx: PluginContext[ConfigT]) -> Event | Awaitable[Event | None] | None:
        """Transform, enrich or drop one event. See the module docstring."""
        raise NotImplementedError(f"{type(self).__name__}.process")

    async def close(self) -> None:
        """Called once when the worker stops."""
