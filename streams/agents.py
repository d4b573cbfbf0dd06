"""Plugin agents: a user's own Faust agent on a topic declared in topology.yaml.

For authors who need a whole stream rather than one event at a time (their own windows,
joins, fan-out). Declared as::

    agents:
      - name: order_totals
        source: events_processed
        handler: my_pkg.agents:order_totals

``handler`` is ``async def handler(events: AsyncIterator[dict], ctx: AgentContext)``; it
iterates the source topic's records as dicts (envelopes are unpacked for it; on
``events_processed`` they are rows of ``events``). Each envelope is a ``Checkpoint`` of its
own, committed when the handler asks for the record after the envelope's last: at-least-once,
so make what it writes idempotent.

When the handler raises, the agent's ``on_error`` decides: ``stop`` (the default) logs the
error and stops the worker, non-zero, with nothing of the failing envelope committed;
``dead_letter`` sends the envelope it was in to the dead-letter topic with the error, commits
it, and calls the handler again with the records after it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from faust.streams import Stream

from headwater.runtime.topology import AgentSpec
from schemas.serializer import decode_envelope
from streams.checkpoint import Checkpoint
from streams.errors import AgentError, AgentFailed

if TYPE_CHECKING:
    import faust
    from faust.types import StreamT, TopicT


@dataclass(frozen=True)
class AgentContext:
    """What an agent handler gets besides its events."""

    name: str
    app: faust.App
    log: logging.Logger


AgentHandler = Callable[[AsyncIterator[dict[str, Any]], AgentContext], Awaitable[None]]


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
    return handler  # type: ignore[no-any-return]


class _Records:
    """The source's records for the handler, one envelope at a time; survives a handler restart."""

    def __init__(self, stream: StreamT[bytes], dead_letter_topic: TopicT) -> None:
        self._messages = cast(Stream[bytes], stream).noack().events().__aiter__()
        self._dead_letter_topic = dead_letter_topic
        self.current: Checkpoint | None = None  # the envelope being handed out, not committed yet

    async def records(self) -> AsyncIterator[dict[str, Any]]:
        """The records of each envelope, in order; an envelope commits when the one after it is read."""
        async for message in self._messages:
            if self.current is not None:
                await self.current.commit()
            self.current = Checkpoint([message], self._dead_letter_topic)
            _, records = decode_envelope(message.value)
            for record in records:
                yield record

    async def dead_letter_current(self, agent: str, error: str) -> None:
        """Send the envelope the handler failed in to the dead-letter topic, and commit it."""
        if self.current is None:
            return
        checkpoint, self.current = self.current, None
        message = checkpoint.messages[0]
        await checkpoint.dead_letter(message.value, message.key, reason="agent_failed", stage=f"agent_{agent}",
                                     error=error, source_topic=message.message.topic)
        await checkpoint.commit()


def add_agent(app: faust.App, spec: AgentSpec, handler: AgentHandler, dead_letter_topic: TopicT,
              crash: Callable[[BaseException], Awaitable[None]]) -> None:
    """Run ``handler`` as the Faust agent ``agent_<name>`` over ``spec.source``, failing by ``spec.on_error``."""
    log = logging.getLogger(f"headwater.agents.{spec.name}")
    ctx = AgentContext(name=spec.name, app=app, log=log)

    async def run(stream: StreamT[bytes]) -> None:
        source = _Records(stream, dead_letter_topic)
        logged: set[str] = set()
        while True:
            try:
                await handler(source.records(), ctx)
                return
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if spec.on_error == "stop":
                    log.error("agent %s failed (%s); the worker stops (on_error: stop)", spec.name, error,
                              exc_info=exc)
                    await crash(AgentFailed(f"agent {spec.name} failed: {error}"))
                    return
                if type(exc).__name__ not in logged:  # once per error type, with the traceback
                    logged.add(type(exc).__name__)
                    log.error("agent %s failed (%s); its envelope goes to the dead-letter topic and the "
                              "agent goes on (on_error: dead_letter)", spec.name, error, exc_info=exc)
                await source.dead_letter_current(spec.name, error)

    app.agent(app.topic(spec.source), name=f"agent_{spec.name}", concurrency=1)(run)
