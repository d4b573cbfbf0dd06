"""Plugin agents: a user's own Faust agent on a topic declared in topology.yaml.

For authors who need a whole stream rather than one event at a time (their own windows,
joins, fan-out). Declared as::

    agents:
      - name: order_totals
        source: events_processed
        handler: my_pkg.agents:order_totals

``handler`` is ``async def handler(events: AsyncIterator[ProcessedEvent], ctx: AgentContext)``;
it iterates the source topic's events (envelopes are unpacked for it). Each envelope is a
``Checkpoint`` of its own, committed when the handler asks for the event after the envelope's
last: at-least-once, so make what it writes idempotent. Its exceptions stop the worker
(nothing of the failing envelope is committed).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from faust.streams import Stream

from schemas.serializer import decode_envelope
from streams.checkpoint import Checkpoint
from streams.errors import AgentError

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


async def _events(stream: StreamT[bytes], dead_letter_topic: TopicT) -> AsyncIterator[dict[str, Any]]:
    """The records of each envelope, in order; an envelope commits when the one after it is read."""
    done: Checkpoint | None = None
    async for message in cast(Stream[bytes], stream).noack().events():
        if done is not None:
            await done.commit()
        done = Checkpoint([message], dead_letter_topic)
        _, records = decode_envelope(message.value)
        for record in records:
            yield record


def add_agent(app: faust.App, name: str, source: str, handler: AgentHandler, dead_letter_topic: TopicT) -> None:
    """Run ``handler`` as the Faust agent ``agent_<name>`` over ``source``."""
    ctx = AgentContext(name=name, app=app, log=logging.getLogger(f"headwater.agents.{name}"))

    async def run(stream: StreamT[bytes]) -> None:
        await handler(_events(stream, dead_letter_topic), ctx)

    app.agent(app.topic(source), name=f"agent_{name}", concurrency=1)(run)
