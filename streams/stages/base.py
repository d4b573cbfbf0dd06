"""What a stage is: a named step that turns one event into an outcome.

Outcomes are values, not exceptions: ``Ok`` passes the event on, ``Drop`` ends it (counted,
with a reason), ``DeadLetter`` sends the original to the dead-letter topic, ``Retry`` asks the
runner to try the stage again after a backoff. An exception raised by a stage, or a stage
that takes longer than its ``timeout_seconds``, is treated as the stage's declared
``on_error`` policy (see ``streams.runner``). Stages may add ingestion warnings with
``event.warn(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from headwater.projects import Project
from streams.event import PipelineEvent


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
    """Token → project (``headwater.projects.ProjectResolver`` in the worker)."""

    async def resolve(self, token: str) -> Project | None: ...


@dataclass(frozen=True)
class StageDeps:
    """The connections stages may use, opened by the worker (or fakes, in tests)."""

    projects: ProjectLookup | None
    redis_url: str | None = None


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
