"""Plugin agents: a user's own async function over the events of a topic declared in topology.yaml.

For authors who need a whole stream rather than one event at a time (their own windows,
joins, fan-out). Declared as::

    agents:
      - name: order_totals
        source: events_processed
        handler: my_pkg.agents:order_totals
        start: earliest          # or latest: where a new agent begins
        on_error: stop           # or dead_letter

``handler`` is a ``streams.plugins.AgentHandler``: ``async def handler(events, ctx)``, iterating
``streams.plugins.Event`` objects (``streams.plugins.events``: raw records of a capture topic,
processed rows with their person on the pipeline's output) for as long as the worker runs.

Each agent reads with a Kafka consumer of its own, in the consumer group ``<app_id>-agent_<name>``:
its offsets are its own (a new agent starts at ``start``, whatever the sinks on the same topic
have read), its lag shows under that group, and the workers of one topology share its
partitions. An envelope's offset is committed when the handler asks for the record after its
last: at least once, so make what it writes idempotent.

A handler must keep iterating (``_Records`` survives a cancelled wait for the next event). An
outage it reports as ``headwater.errors.Unavailable`` hands the envelope out again after a
backoff. When it raises anything else, ``on_error`` decides: ``stop`` logs the error
and stops the worker, non-zero, with nothing of the failing envelope committed; ``dead_letter``
sends that envelope to the dead-letter topic with the error, commits it, and calls the handler
again with the records after it. A handler that returns, or raises before it read a record (so
there is no envelope to blame), stops the worker whatever ``on_error`` says: an agent that no
longer runs is never hidden.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from headwater.errors import Unavailable
from headwater.runtime.topology import AgentSpec, Topology
from schemas.dead_letter import Headers, dead_letter_headers
from schemas.events import ProcessedEvent, RawEvent
from schemas.serializer import decode_envelope
from streams import lag_metrics, telemetry
from streams.errors import AgentError, AgentFailed
from streams.plugins.api import AgentContext, AgentHandler, Event
from streams.plugins.events import from_processed, from_raw

if TYPE_CHECKING:
    import faust
    from aiokafka import AIOKafkaConsumer
    from faust.types import TopicT

log = logging.getLogger("headwater.agents")

AGENT_POLL_RECORDS = 16
"""Envelopes one fetch hands the agent's consumer: each holds up to a few thousand events."""
AGENT_MAX_POLL_SECONDS = 900
"""How long a handler may take over one envelope before Kafka gives its partitions to another
worker (aiokafka's default is 300 s; an envelope holds up to a few thousand events)."""
OUTAGE_BACKOFF_SECONDS = 1.0
MAX_OUTAGE_BACKOFF_SECONDS = 30.0


def load_handler(ref: str) -> AgentHandler:
    """``package.module:function`` → the function; ``AgentError`` when it cannot be found."""
    module_name, sep, attr = ref.partition(":")
    if not sep:
        raise AgentError(f"agent handler {ref!r}: use package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentError(f"cannot import agent module {module_name!r}: {exc}") from exc
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise AgentError(f"module {module_name!r} has no function {attr!r}")
    return cast(AgentHandler, handler)


def consumer_group(app_id: str, agent: str) -> str:
    """The agent's own consumer group: its offsets, and where its lag shows."""
    return f"{app_id}-agent_{agent}"


@dataclass(frozen=True)
class Envelope:
    """One message of the agent's source topic: an envelope of records."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class AgentSource(Protocol):
    """The agent's consumer (``KafkaAgentSource``; a list in unit tests)."""

    async def next(self) -> Envelope:
        """The next envelope; waits for one."""
        ...

    async def commit(self, envelope: Envelope) -> None:
        """Mark ``envelope`` done: the group's offset moves past it."""
        ...


DeadLetterSender = Callable[[Envelope, Headers], Awaitable[None]]
"""Send an envelope to the dead-letter topic and wait for Kafka's ack."""


def events_of(envelope: Envelope) -> list[Event]:
    """The envelope's records as ``Event`` objects; ``AgentError`` for a topic that holds no events."""
    subject, records = decode_envelope(envelope.value)
    if subject == "processed_envelope":
        return [from_processed(cast(ProcessedEvent, r)) for r in records]
    if subject == "raw_envelope":
        return [from_raw(cast(RawEvent, r), envelope.topic) for r in records]
    raise AgentError(f"topic {envelope.topic!r} holds {subject} envelopes, not events")


class _Records:
    """The source's events for the handler: an async iterator that survives a handler restart and a
    cancelled ``__anext__`` (``asyncio.wait_for(anext(events), …)`` to flush on idle is fine).

    An envelope is committed when the event after its last is asked for.
    """

    def __init__(self, source: AgentSource) -> None:
        self._source = source
        self.current: Envelope | None = None  # the envelope being handed out, not committed yet
        self._events: list[Event] = []
        self._next = 0  # the index in ``_events`` of the next event to hand out
        self._done = 0  # envelopes committed (or dead-lettered) so far

    def __aiter__(self) -> _Records:
        return self

    async def __anext__(self) -> Event:
        while self.current is None or self._next >= len(self._events):
            if self.current is not None:  # all of it handed out, and the handler asks for more
                await self._source.commit(self.current)  # cancelled here: committed again next time
                self.current = None
                self._done += 1
            envelope = await self._source.next()  # cancelled here: nothing changed
            self.current, self._events, self._next = envelope, [], 0
            self._events = events_of(envelope)  # an envelope that holds no events fails like the handler
        event = self._events[self._next]
        self._next += 1
        return event

    @property
    def place(self) -> tuple[int, int]:
        """How far the handler got: envelopes done, then events of the current one handed out."""
        return self._done, self._next

    def rewind(self) -> None:
        """Hand the current envelope out again from its first event (after an outage)."""
        self._next = 0

    async def dead_letter_current(self, agent: str, error: str, send: DeadLetterSender) -> None:
        """Send the envelope the handler failed in to the dead-letter topic, then commit it."""
        if self.current is None:
            raise AgentError("no envelope to dead-letter")
        envelope = self.current
        headers = dead_letter_headers(reason="agent_failed", stage=f"agent_{agent}", error=error,
                                      source_topic=envelope.topic)
        await send(envelope, headers)
        await self._source.commit(envelope)
        self.current = None
        self._done += 1
        telemetry.EVENTS_DEAD_LETTERED.labels(f"agent_{agent}").inc()
        telemetry.DEAD_LETTERS.labels(f"agent_{agent}", "agent_failed").inc()


def _failure(exc: BaseException) -> BaseException | None:
    """What a handler raised, as a failure; None for the worker's own cancellation (to pass on)."""
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        return None if task is None or task.cancelling() else exc  # a handler's own cancelled await: a failure
    return exc if isinstance(exc, Exception) else None


async def run_agent(spec: AgentSpec, handler: AgentHandler, ctx: AgentContext, source: AgentSource,
                    dead_letter: DeadLetterSender, backoff: float = OUTAGE_BACKOFF_SECONDS) -> AgentFailed:
    """Run ``handler`` over ``source`` until it can no longer run; the reason, for the worker to stop on.

    Returns (rather than raises) ``AgentFailed``: under ``stop`` the first error, under
    ``dead_letter`` a failure with nothing to dead-letter, and always a handler that returned.
    ``headwater.errors.Unavailable`` (an outage) is neither: the current envelope is handed out
    again after a backoff, whatever ``on_error`` says. Cancelled when the worker stops.
    """
    records = _Records(source)
    logged: set[str] = set()
    waits, outage_at = 0, (-1, -1)
    while True:
        try:
            await handler(records, ctx)
        except BaseException as raised:
            exc = _failure(raised)
            if exc is None:
                raise
            if isinstance(exc, Unavailable):
                if records.place > outage_at:  # it got further than at the last outage: a new one
                    waits = 0
                outage_at = records.place
                if waits == 0:
                    ctx.log.warning("agent %s: %s; its envelope is handed out again after a backoff", spec.name, exc)
                await asyncio.sleep(min(backoff * 2 ** waits, MAX_OUTAGE_BACKOFF_SECONDS))
                waits += 1
                records.rewind()
                continue
            waits = 0
            error = f"{type(exc).__name__}: {exc}"
            if spec.on_error == "stop" or records.current is None:
                why = "on_error: stop" if spec.on_error == "stop" else "before it read an event: nothing to dead-letter"
                ctx.log.error("agent %s failed (%s); the worker stops (%s)", spec.name, error, why, exc_info=exc)
                return AgentFailed(f"agent {spec.name} failed: {error}")
            if type(exc).__name__ not in logged:  # once per error type, with the traceback
                logged.add(type(exc).__name__)
                ctx.log.error("agent %s failed (%s); its envelope goes to the dead-letter topic and the "
                              "agent goes on (on_error: dead_letter)", spec.name, error, exc_info=exc)
            await records.dead_letter_current(spec.name, error, dead_letter)
        else:
            ctx.log.error("agent %s returned; a handler must iterate its events for as long as the worker runs",
                          spec.name)
            return AgentFailed(f"agent {spec.name} returned: its handler stopped iterating its events")


class KafkaAgentSource:
    """The agent's own consumer: group ``<app_id>-agent_<name>``, offsets committed by ``commit``."""

    def __init__(self, consumer: AIOKafkaConsumer, group: str = "") -> None:
        self._consumer = consumer
        self._group = group

    @classmethod
    def create(cls, kafka: str, group: str, spec: AgentSpec) -> KafkaAgentSource:
        from aiokafka import AIOKafkaConsumer

        return cls(AIOKafkaConsumer(
            spec.source, bootstrap_servers=kafka, group_id=group, client_id=group, enable_auto_commit=False,
            auto_offset_reset=spec.start, max_poll_records=AGENT_POLL_RECORDS,
            session_timeout_ms=10_000, heartbeat_interval_ms=2_000,  # as the worker's own consumer
            max_poll_interval_ms=AGENT_MAX_POLL_SECONDS * 1000,
        ), group)

    async def start(self) -> None:
        await self._consumer.start()
        lag_metrics.watch(self._group, self._consumer.assignment)

    async def stop(self) -> None:
        lag_metrics.unwatch(self._group)
        await self._consumer.stop()

    async def next(self) -> Envelope:
        message = await self._consumer.getone()
        return Envelope(message.topic, message.partition, message.offset, message.key, cast(bytes, message.value))

    async def commit(self, envelope: Envelope) -> None:
        from aiokafka import TopicPartition
        from aiokafka.errors import CommitFailedError, IllegalStateError

        try:
            await self._consumer.commit({TopicPartition(envelope.topic, envelope.partition): envelope.offset + 1})
        except (CommitFailedError, IllegalStateError) as exc:
            # The partition moved to another worker of the group meanwhile: it reads the envelope again.
            log.info("offset %s of %s[%s] not committed (%s): its new owner reads it again",
                     envelope.offset, envelope.topic, envelope.partition, exc)


def add_agents(app: faust.App, topology: Topology, kafka: str, dead_letters: TopicT,
               crash: Callable[[BaseException], Awaitable[None]]) -> None:
    """One task per declared agent, started with the worker; a failed agent stops the worker."""
    for spec in topology.agents:
        _add_agent(app, topology.app_id, spec, load_handler(spec.handler), kafka, dead_letters, crash)


def _add_agent(app: faust.App, app_id: str, spec: AgentSpec, handler: AgentHandler, kafka: str,
               dead_letters: TopicT, crash: Callable[[BaseException], Awaitable[None]]) -> None:
    ctx = AgentContext(name=spec.name, app=app, log=logging.getLogger(f"headwater.agents.{spec.name}"))

    async def dead_letter(envelope: Envelope, headers: Headers) -> None:
        ack = await dead_letters.send(key=envelope.key, value=envelope.value, headers=headers)
        await ack

    async def run() -> None:
        source = KafkaAgentSource.create(kafka, consumer_group(app_id, spec.name), spec)
        try:
            await source.start()
            failed: BaseException = await run_agent(spec, handler, ctx, source, dead_letter)
        except Exception as exc:  # noqa: BLE001 - Kafka gone, a dead letter refused: the worker stops
            failed = AgentFailed(f"agent {spec.name} cannot run: {type(exc).__name__}: {exc}")
        finally:
            await source.stop()
        if not app.should_stop:  # a send refused while the worker stops is no failure
            await crash(failed)

    run.__name__ = f"agent_{spec.name}"
    app.task(run)

