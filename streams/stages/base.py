"""What a stage is: a named step that turns one event into an outcome.

Outcomes are values, not exceptions: ``Ok`` passes the event on, ``Drop`` ends it (counted,
with a reason), ``DeadLetter`` sends the original to the dead-letter topic, ``Retry`` asks the
runner to try the stage again after a backoff. An exception raised by a stage, or a stage
that takes longer than its ``timeout_seconds``, is treated as the stage's declared
``on_error`` policy (see ``streams.runner``); ``headwater.errors.Unavailable`` (Redis or
Postgres is down) is retried like ``Retry``. Stages may add ingestion warnings with
``event.warn(...)``.

Life cycle: the runner calls ``start`` once, before the first event (the worker's pipeline
agent before it consumes, ``topology test`` before its cases), then ``process`` per event,
then ``close`` once when the worker stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from headwater.runtime.projects import Project
from streams.event import PipelineEvent

if TYPE_CHECKING:  # at run time the plugin API (streams.plugins) imports this module, not the reverse
    from streams.plugins.kv import KeyValueStore


@dataclass(frozen=True)
class Ok:
    event: PipelineEvent


@dataclass(frozen=True)
class Drop:
    """The event ends here on purpose: counted as ``headwater_stream_events_dropped_total{stage, reason}``.

    ``reason`` is a metric label: a fixed snake_case word (``sampled_out``, ``bot``), never
    per-event data. Plugins return it too (``from streams.plugins import Drop``).
    """

    reason: str


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    error: str = ""


@dataclass(frozen=True)
class Retry:
    reason: str


Outcome = Ok | Drop | DeadLetter | Retry


class ProjectLookup(Protocol):
    """Token → project (``headwater.runtime.projects.ProjectResolver`` in the worker).

    Raises ``headwater.errors.Unavailable`` when it cannot answer now.
    """

    async def resolve(self, token: str) -> Project | None: ...


@dataclass(frozen=True)
class StageResources:
    """What the worker opened once and hands every stage factory (``streams.resources``).

    ``topology test`` hands the same shape without services: a fixed project and in-memory
    stores. Everything is required: a stage never opens connections of its own.
    """

    projects: ProjectLookup
    kv: Callable[[str], KeyValueStore]
    """A key-value store namespaced for one stage (Redis in the worker)."""


class BaseStage:
    """A base for stages that hold no resources: keeps the name, nothing to start or close."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Stage(Protocol):
    """A pipeline step. The runner calls ``process`` once per event, in key order.

    ``process`` must be quick and async (slow per-event work stalls the partition and
    triggers rebalances). Raising, or passing the stage's timeout, means "apply my
    ``on_error`` policy". ``close`` is called once when the worker stops.

    ``start`` (``BaseStage`` has one that does nothing) is called once by ``StageRunner.start``
    before the first event; its raising stops the worker before it consumes anything
    (``StageStartError``). Open files and clients there, so that a bad path or a refused login
    fails at start instead of dead-lettering events.
    """

    name: str

    async def start(self) -> None: ...

    async def process(self, event: PipelineEvent) -> Outcome: ...

    async def close(self) -> None: ...
