"""Batches of Kafka messages from a Faust stream, acknowledged only after they were handled.

Why not ``Stream.take()``: it acks the buffered events in a ``finally`` clause, so a worker
stopped while a batch is being written marks that batch done and Faust commits offsets for
events that never reached the sink. Here acks are manual (``stream.noack()``): each batch gets
a ``Checkpoint``, ``handle`` fills it, and ``Checkpoint.commit`` flushes sinks, awaits the
producer and only then acks the messages, so Faust commits nothing unflushed. A timer flushes
a partial batch after ``max_seconds``.

Batches are bounded by events, not messages: an envelope says how many events it holds in its
``count`` header (``schemas.envelope.COUNT_HEADER``), so a batch of big envelopes holds no more
decoded events than a batch of small ones. One commit is in flight while the next batch is
handled (decoded, run through the stages, written to a sink's buffer); commits still happen
one after another, in order, so an offset is never acked before the ones before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import cast

from faust.streams import Stream
from faust.types import EventT, StreamT, TopicT

from schemas.envelope import header_count
from streams.checkpoint import Checkpoint

Handler = Callable[[Checkpoint], Awaitable[None]]
"""Handles one batch: reads ``checkpoint.messages``, sends and registers flushes through it; never acks."""


def events_in(message: EventT[bytes]) -> int:
    """How many events a message holds: its ``count`` header, else 1."""
    count = header_count(message.headers)
    return 1 if count is None else count


async def consume_in_batches(
    stream: StreamT[bytes],
    handle: Handler,
    *,
    dead_letter_topic: TopicT,
    max_events: int,
    max_seconds: float,
    on_fatal: Callable[[BaseException], Awaitable[None]],
) -> None:
    """Feed ``stream``'s events to ``handle`` in batches; commit each batch's checkpoint after it.

    A batch closes at ``max_events`` events (or sooner, after ``max_seconds``). ``handle`` or
    a commit raises only for errors that must stop the worker: nothing of that batch (or of
    any later one) is acked, and ``on_fatal`` (the app's crash) is called.
    """
    buffer: list[EventT[bytes]] = []
    buffered_events = 0
    oldest = 0.0
    lock = asyncio.Lock()
    committing: asyncio.Task[None] | None = None

    async def flush() -> None:
        nonlocal buffered_events, committing
        async with lock:
            if not buffer:
                return
            checkpoint = Checkpoint(list(buffer), dead_letter_topic)
            buffer.clear()
            buffered_events = 0
            await handle(checkpoint)  # while the previous batch's commit is still in flight
            if committing is not None:
                await committing  # in order: this batch's offsets come after the previous ones
            committing = asyncio.create_task(checkpoint.commit())

    def failed_commit() -> BaseException | None:
        if committing is None or not committing.done() or committing.cancelled():
            return None
        return committing.exception()

    async def timer() -> None:
        while True:
            await asyncio.sleep(max_seconds / 4)
            try:
                failure = failed_commit()
                if failure is not None:
                    raise failure
                if buffer and time.monotonic() - oldest >= max_seconds:
                    await flush()
            except Exception as exc:  # noqa: BLE001 - fatal by contract; stop the worker
                await on_fatal(exc)
                return

    ticker = asyncio.create_task(timer())
    try:
        # Agents are handed a Stream; StreamT (their declared type) lacks noack().
        async for event in cast(Stream[bytes], stream).noack().events():
            if ticker.done():
                return  # the timer hit a fatal error and crashed the app
            if not buffer:
                oldest = time.monotonic()
            buffer.append(event)
            buffered_events += events_in(event)
            if buffered_events >= max_events:
                try:
                    await flush()
                except Exception as exc:  # noqa: BLE001 - fatal by contract; stop the worker
                    await on_fatal(exc)
                    return
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if committing is not None and not committing.done():
            committing.cancel()  # not acked: read again after a restart (sinks are idempotent)
            await asyncio.gather(committing, return_exceptions=True)
