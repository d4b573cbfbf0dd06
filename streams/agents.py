"""Plugin agents: a user's own Faust agent on a topic declared in topology.yaml.

For authors who need a whole stream rather than one event at a time (their own windows,
joins, fan-out). Declared as::

    agents:
      - name: order_totals
        source: events_processed
        handler: my_pkg.agents:order_totals

``handler`` is ``async def handler(events: AsyncIterator[ProcessedEvent], ctx: AgentContext)``;
it iterates the source topic's events (envelopes are unpacked for it). Offsets are committed as
the handler moves on from an envelope, Faust's at-least-once default: make what it writes
idempotent. Its exceptions stop the worker (nothing of the failing envelope is committed).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas import registry
from schemas.serializer import AvroSerializer
from streams.errors import StreamsError

if TYPE_CHECKING:  # faust is heavy; the gateway loads this module through topology validation
    import faust
    from faust.types import StreamT


@dataclass(frozen=True)
class AgentContext:
    """What an agent handler gets besides its events."""

    name: str
    app: faust.App
    log: logging.Logger


AgentHandler = Callable[[AsyncIterator[dict[str, Any]], AgentContext], Awaitable[None]]


def load_handler(ref: str) -> AgentHandler:
    """``package.module:function`` → the function; ``StreamsError`` when it cannot be found."""
    module_name, sep, attr = ref.partition(":")
    if not sep:
        raise StreamsError(f"agent handler {ref!r}: use package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StreamsError(f"cannot import agent module {module_name!r}: {exc}") from exc
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise StreamsError(f"module {module_name!r} has no function {attr!r}")
    return handler  # type: ignore[no-any-return]


async def _events(stream: StreamT[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The events of each envelope, in order; the envelope is acked when the next one is read."""
    async for value in stream:
        subject = registry.by_id(int.from_bytes(value[1:5], "big")).subject
        envelope: dict[str, Any] = AvroSerializer[dict[str, Any]](subject).decode(value)
        for key in ("events", "warnings"):
            for event in envelope.get(key, []):
                yield event


def add_agent(app: faust.App, name: str, source: str, handler: AgentHandler) -> None:
    ctx = AgentContext(name=name, app=app, log=logging.getLogger(f"headwater.agents.{name}"))

    async def run(stream: StreamT[bytes]) -> None:
        await handler(_events(stream), ctx)

    app.agent(app.topic(source), name=f"agent_{name}", concurrency=1)(run)
