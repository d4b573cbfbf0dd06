"""What a stage is: a named step that turns a batch of events into one outcome per event.

Outcomes are values, not exceptions: ``Ok`` passes the event on, ``Drop`` ends it (counted,
with a reason), ``DeadLetter`` sends the original to the dead-letter topic, ``Retry`` asks the
runner to try the stage again on that event after a backoff, ``Errored`` says "this event
failed" and lets the stage's declared ``on_error`` policy decide (see ``streams.runner``).
An exception raised by ``process_batch``, or a call that takes longer than the stage's
``timeout_seconds``, fails the whole call: the runner isolates the failing events by bisecting
the batch, so one bad event never dead-letters its neighbours. ``headwater.errors.Unavailable``
(Redis or Postgres is down) is retried like ``Retry``. Stages may add ingestion warnings with
``event.warn(...)``.

Stages are batch-first. A stage that talks to a service does it once per batch in
``process_batch``; a stage that is naturally per event subclasses ``EventStage`` and writes
only a plain (not ``async``) ``process(event)``: the adapter loops, and an exception there
becomes that event's ``Errored``.

Life cycle: the runner calls ``start`` once, before the first batch (the worker's pipeline
agent before it consumes, ``topology test`` before its cases), then ``process_batch`` per
batch, then ``close`` once when the worker stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from headwater.runtime.projects import Project
from streams.event import PipelineEvent

if TYPE_CHECKING:  # at run time the plugin API (streams.plugins) imports this module, not the reverse
    from streams.outbox import Outbox
    from streams.persons.process import PersonStorage
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


@dataclass(frozen=True)
class Errored:
    """This event failed with ``error``: the stage's ``on_error`` policy decides what happens to it."""

    error: Exception


Outcome = Ok | Drop | DeadLetter | Retry | Errored


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
    persons: PersonStorage
    """Persons (Postgres, cached in Redis, in the worker): the ``persons`` stage's."""
    outbox: Outbox
    """Messages a stage produces besides its events, sent with the batch (``streams.outbox``)."""

    @classmethod
    def offline(cls, projects: ProjectLookup, kv: Callable[[str], KeyValueStore]) -> StageResources:
        """Without services (``topology test``, unit tests): persons in memory, and an outbox that
        keeps what stages put in it until ``drain()``."""
        from streams.outbox import Outbox, OutMessage
        from streams.persons.memory import MemoryPersonStore

        async def nowhere(_message: OutMessage) -> None:
            return None

        return cls(projects=projects, kv=kv, persons=MemoryPersonStore(), outbox=Outbox(nowhere))


class BaseStage:
    """A base for stages that hold no resources: keeps the name, nothing to start or close."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class EventStage(BaseStage):
    """A stage that is naturally per event: implement ``process``; ``process_batch`` loops over it.

    ``process`` is a plain function (no I/O: a stage that needs a service implements
    ``process_batch`` and makes one round trip per batch). An exception it raises becomes that
    event's ``Errored`` outcome; the other events of the batch go on.
    """

    def process(self, event: PipelineEvent) -> Outcome:
        raise NotImplementedError

    async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        append = outcomes.append
        process = self.process
        for event in events:
            try:
                append(process(event))
            except Exception as exc:  # noqa: BLE001 - this event's on_error policy decides
                append(Errored(exc))
        return outcomes


class Stage(Protocol):
    """A pipeline step. The runner calls ``process_batch`` with a batch of events in key order.

    ``process_batch`` returns one ``Outcome`` per event, in the order given, and must be quick
    (a slow batch stalls the partitions and triggers rebalances). Raising, or taking longer
    than the stage's ``timeout_seconds``, fails the call: the runner applies the ``on_error``
    policy to the events, bisecting the batch to find the failing ones.

    ``start`` (``BaseStage`` has one that does nothing) is called once by ``StageRunner.start``
    before the first batch; its raising stops the worker before it consumes anything
    (``StageStartError``). Open files and clients there, so that a bad path or a refused login
    fails at start instead of dead-lettering events. ``close`` is called once when the worker stops.
    """

    name: str

    async def start(self) -> None: ...

    async def process_batch(self, events: Sequence[PipelineEvent]) -> Sequence[Outcome]: ...

    async def close(self) -> None: ...
