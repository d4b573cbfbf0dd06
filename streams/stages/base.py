"""What a stage is: a named step that turns one event into an outcome.

Outcomes are values, not exceptions: ``Ok`` passes the event on, ``Drop`` ends it (counted,
with a reason), ``DeadLetter`` sends the original to the dead-letter topic, ``Retry`` asks the
runner to try the stage again after a backoff. An exception raised by a stage, or a stage
that takes longer than its ``timeout_seconds``, is treated as the stage's declared
``on_error`` policy (see ``streams.runner``); ``headwater.errors.Unavailable`` (Redis or
Postgres is down) is retried like ``Retry``. Stages may add ingestion warnings with
``event.warn(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from headwater.runtime.projects import Project
from streams.event import PipelineEvent
from streams.plugins.kv import KeyValueStore


@dataclass(frozen=True)
class Ok:
    event: PipelineEvent


@dataclass(frozen=True)
class Drop:
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
    """A base for stages that hold no resources: keeps the name, has nothing to close."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def close(self) -> None:
        return None


class Stage(Protocol):
    """A pipeline step. The runner calls ``process`` once per event, in key order.

    ``process`` must be quick and async (slow per-event work stalls the partition and
    triggers rebalances). Raising, or passing the stage's timeout, means "apply my
    ``on_error`` policy". ``close`` is called once when the worker stops.
    """

    name: str

    async def process(self, event: PipelineEvent) -> Outcome: ...

    async def close(self) -> None: ...
