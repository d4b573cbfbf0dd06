"""The plugin API: what a plugin author writes against (import it from ``streams.plugins``).

A plugin is a class with a typed config model and one method::

    class AddPlan(Plugin["AddPlan.Config"]):
        name = "add_plan"

        class Config(PluginConfig):
            plan: str = "free"

        async def process(self, event: Event, ctx: PluginContext[AddPlan.Config]) -> Event | Drop | None:
            event.properties.setdefault("plan", self.config.plan)
            return event

``process`` may be ``async def`` or a plain ``def`` (then it runs in a thread pool, so it may
block). It returns the event (changed or not), ``Drop("reason")`` to end it on purpose (counted
by reason, no warning), or ``None`` to drop it as a transformation would (counted as
``dropped_by_plugin`` and recorded as the ingestion warning ``event_dropped_by_transformation``).
Raising ``PluginError`` (or anything else), or taking longer than the stage's
``timeout_seconds``, applies the stage's ``on_error`` policy to that event alone.

A plugin that talks to a service should do it once per batch, not once per event: it may
define ``async def process_batch(self, events: list[Event], ctx) -> list[Event | Drop | None]``
(one result per event, in order) and the worker calls that instead of ``process``. Raising
there fails the whole call: the worker bisects the batch to find the events that fail alone.
The stage's ``timeout_seconds`` applies to one call: the batch (up to a few thousand events),
whichever method runs it.

Life cycle: the worker calls ``setup`` once when it starts, before it consumes (a failing
``setup`` stops the worker with an error naming the stage), ``process`` (or ``process_batch``)
per event (per batch), and ``close`` once when it stops (only if ``setup`` succeeded).

``event.set``/``event.set_once`` are the person properties the event sets (wherever the SDK put
them: top level or ``properties["$set"]``); ``properties`` holds no ``$set``/``$set_once`` while
a plugin runs. What a plugin leaves there becomes the event's ``$set``/``$set_once``, whether
the plugin runs before or after ``normalize`` (``streams.stages.normalize.merge_person_updates``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from streams.plugins.kv import KeyValueStore
from streams.stages.base import Drop

if TYPE_CHECKING:
    import faust


class PluginConfig(BaseModel):
    """Base of plugin config models: strict (an unknown key is an error) and frozen.

    Field descriptions become the plugin's reference; the topology loader validates the stage's
    ``config`` against the model before the worker starts and reports each problem as
    ``file:line:col pipeline.stages[N].config.key: message``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoSettings(PluginConfig):
    """The config of a plugin that has no settings (the default ``Plugin.Config``)."""


ConfigT = TypeVar("ConfigT", bound=BaseModel)


@dataclass
class Event:
    """An event as a plugin sees it. Change it in place and return it, or return a new one.

    ``set``/``set_once``: the person properties this event sets / sets if unset; ``properties``
    does not contain ``$set``/``$set_once`` (they are these two fields while the plugin runs).
    ``person_id``/``person_properties``: the person the event was attributed to, known to an
    agent on the pipeline's output; a plugin stage sees None and ``{}`` (it changes a person
    through ``set``/``set_once``).
    """

    uuid: str
    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime
    team_id: int | None = None
    ip: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    set_once: dict[str, Any] = field(default_factory=dict)
    person_id: str | None = None
    person_properties: dict[str, Any] = field(default_factory=dict)


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
    """Base class of plugins. Set ``name`` and ``Config`` (a ``PluginConfig``); implement ``process``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, config: ConfigT, ctx: PluginContext[ConfigT]) -> None:
        self.config = config
        self.ctx = ctx

    async def setup(self) -> None:
        """Called once when the worker starts, before any event (open files and clients here).

        Raising stops the worker before it consumes: the error names the stage and the cause.
        """

    def process(self, event: Event, ctx: PluginContext[ConfigT]
                ) -> Event | Drop | Awaitable[Event | Drop | None] | None:
        """Transform, enrich or drop one event. See the module docstring."""
        raise NotImplementedError(f"{type(self).__name__}.process")

    async def close(self) -> None:
        """Called once when the worker stops, if ``setup`` succeeded."""


@dataclass(frozen=True)
class AgentContext:
    """What an agent handler gets besides its events: its name, the worker's Faust app, a logger."""

    name: str
    app: faust.App
    log: logging.Logger


AgentHandler = Callable[[AsyncIterator[Event], AgentContext], Awaitable[None]]
"""An agent: ``async def handler(events, ctx)``; it iterates ``events`` for as long as the worker runs."""

BatchMethod = Callable[[list[Event], PluginContext[Any]], Awaitable[list[Event | Drop | None]]]
"""A plugin's optional ``process_batch`` (bound): the batch's events → one result per event."""
