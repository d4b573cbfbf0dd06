"""Batches of Kafka messages from a Faust stream, acknowledged only after they were handled.

Why not ``Stream.take()``: it acks the buffered events in a ``finally`` clause, so a worker
stopped while a batch is being written marks that batch done and Faust commits offsets for
events that never reached the sink. Here acks are manual (``stream.noack()``): each batch gets
a ``Checkpoint``, ``handle`` fills it, and ``Checkpoint.commit`` flushes sinks, awaits the
producer and only then acks the messages, so Faust commits nothing unflushed. A timer flushes
a partial batch after ``max_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import cast

from faust.streams import Stream
from faust.types import EventT, StreamT, TopicT

from streams.checkpoint import Checkpoint

Handler = Callable[[Checkpoint], Awaitable[None]]
"""Handles one batch: reads ``checkpoint.messages``, sends and registers flushes through it; never acks."""


async def consume_in_batches(
    stream: StreamT[bytes],
    handle: Handler,
    *,
    dead_letter_topic: TopicT,
    max_messages: int,
    max_seconds: float,
    on_fatal: Callable[[BaseException], Awaitable[None]],
) -> None:
    """Feed ``stream``'s events to ``handle`` in batches; commit each batch's checkpoint after it.

    ``handle`` (or the commit) raises only for errors that must stop the worker: nothing of
    that batch is acked, and ``on_fatal`` (the app's crash) is called.
    """
    buffer: list[EventT[bytes]] = []
    oldest = 0.0
    lock = asyncio.Lock()

    async def flush() -> None:
        async with lock:
            if not buffer:
                return
            checkpoint = Checkpoint(list(buffer), dead_letter_topic)
            buffer.clear()
            await handle(checkpoint)
            await checkpoint.commit()

    async def timer() -> None:
        while True:
            await asyncio.sleep(max_seconds / 4)
            if buffer and time.monotonic() - oldest >= max_seconds:
                try:
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
            if len(buffer) >= max_messages:
                try:
                    await flush()
                except Exception as exc:  # noqa: BLE001 - fatal by contract; stop the worker
                    await on_fatal(exc)
                    return
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
