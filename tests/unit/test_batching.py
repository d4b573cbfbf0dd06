"""Batches bounded by events, handled while the previous commit is in flight, committed in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from streams.batching import Handler, consume_in_batches
from streams.checkpoint import Checkpoint
from tests.support.waiting import wait_until


class _Message:
    def __init__(self, n: int, count: int, log: list[str]) -> None:
        self.n = n
        self.headers = {"count": str(count).encode()}
        self._log = log

    def ack(self) -> None:
        self._log.append(f"ack {self.n}")


class _Stream:
    """What consume_in_batches uses of a Faust stream: ``noack().events()``."""

    def __init__(self, messages: list[_Message]) -> None:
        self._messages = messages

    def noack(self) -> _Stream:
        return self

    async def events(self) -> AsyncIterator[_Message]:
        for message in self._messages:
            yield message
        await asyncio.sleep(3600)  # a stream does not end; the test cancels it


async def _run(messages: list[_Message], handle: Handler, until: Callable[[], bool],
               max_events: int = 100) -> list[BaseException]:
    """Consume ``messages`` until ``until()`` holds or a fatal error stops it; the fatal errors."""
    fatal: list[BaseException] = []

    async def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)

    async def finished() -> bool:
        return until() or bool(fatal)

    task = asyncio.create_task(consume_in_batches(
        _Stream(messages), handle, dead_letter_topic=None, max_events=max_events, max_seconds=0.2,  # type: ignore[arg-type]
        on_fatal=on_fatal))
    try:
        await wait_until(finished, 10, "the batches were not handled", interval=0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return fatal


async def test_batches_close_at_max_events_counted_from_the_envelopes() -> None:
    log: list[str] = []
    sizes: list[list[int]] = []
    messages = [_Message(i, count, log) for i, count in enumerate([60, 30, 20, 90, 5, 1])]

    async def handle(checkpoint: Checkpoint) -> None:
        sizes.append([m.n for m in checkpoint.messages])  # type: ignore[attr-defined]

    assert await _run(messages, handle, lambda: len(log) == 6) == []
    assert sizes == [[0, 1, 2], [3, 4, 5]]  # 110 events, then 96 flushed by the timer


async def test_the_next_batch_is_handled_while_the_commit_is_in_flight_and_acks_stay_in_order() -> None:
    log: list[str] = []
    release = asyncio.Event()
    messages = [_Message(i, 100, log) for i in range(3)]

    async def handle(checkpoint: Checkpoint) -> None:
        n = checkpoint.messages[0].n  # type: ignore[attr-defined]
        log.append(f"handle {n}")

        async def slow_flush() -> None:
            log.append(f"flush {n}")
            if n == 0:
                await release.wait()

        checkpoint.on_flush(slow_flush)

    async def handled_1() -> bool:
        return "handle 1" in log

    async def let_go() -> None:
        await wait_until(handled_1, 10, "batch 1 was not handled while commit 0 was in flight", interval=0.01)
        release.set()

    releaser = asyncio.create_task(let_go())
    assert await _run(messages, handle, lambda: "ack 2" in log) == []
    await releaser
    assert log.index("handle 1") < log.index("ack 0")  # batch 1 was handled during commit 0
    assert [e for e in log if e.startswith("ack")] == ["ack 0", "ack 1", "ack 2"]


async def test_a_failed_commit_stops_the_worker_and_acks_nothing_after_it() -> None:
    log: list[str] = []
    messages = [_Message(i, 100, log) for i in range(3)]

    async def handle(checkpoint: Checkpoint) -> None:
        n = checkpoint.messages[0].n  # type: ignore[attr-defined]

        async def flush() -> None:
            if n == 1:
                raise RuntimeError("sink down for good")

        checkpoint.on_flush(flush)

    fatal = await _run(messages, handle, lambda: False)
    assert [str(e) for e in fatal] == ["sink down for good"]
    assert log == ["ack 0"]
