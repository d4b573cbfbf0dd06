"""Messages stages produce while a batch runs, sent through that batch's checkpoint.

A stage that writes somewhere else as well (the ``persons`` stage writes Postgres) hands the
rows derived from that write to the ``Outbox``; the pipeline sends them with the batch's
processed envelopes, so the batch commits only after Kafka acknowledged them, and tells each
message's ``on_delivered`` once it did. ``send_now`` is for what must go out between batches
(a stage's relay of messages an earlier, crashed worker wrote but never sent).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class OutMessage:
    """One message for ``topic``: an envelope of ``count`` records."""

    topic: str
    value: bytes
    count: int
    key: bytes | None = None
    on_delivered: Callable[[], None] | None = None


Send = Callable[[OutMessage], Awaitable[None]]
"""Produces a message and returns once Kafka acknowledged it."""


class Outbox:
    """What stages want sent with the current batch (``add``), drained by the pipeline."""

    def __init__(self, send: Send) -> None:
        self._pending: list[OutMessage] = []
        self._send = send

    def add(self, messages: Iterable[OutMessage]) -> None:
        self._pending.extend(messages)

    def drain(self) -> list[OutMessage]:
        """The messages added since the last drain; the pipeline sends them in the batch's checkpoint."""
        pending, self._pending = self._pending, []
        return pending

    async def send_now(self, message: OutMessage) -> None:
        """Send outside any batch and wait for Kafka's ack; then ``on_delivered``."""
        await self._send(message)
        if message.on_delivered is not None:
            message.on_delivered()
