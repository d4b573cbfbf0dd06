"""The one commit order: flush sinks, then await every producer ack, then ack the messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.checkpoint import Checkpoint


class _Message:
    def __init__(self, log: list[str]) -> None:
        self._log = log

    def ack(self) -> None:
        self._log.append("ack")


class _Topic:
    """A Faust topic stand-in: ``send`` queues and returns the future of Kafka's answer."""

    def __init__(self, log: list[str], fail: bool = False) -> None:
        self._log = log
        self._fail = fail
        self.sent: list[dict[str, Any]] = []

    async def send(self, **message: Any) -> asyncio.Future[None]:
        self.sent.append(message)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def answer() -> None:
            self._log.append("produced")
            if self._fail:
                future.set_exception(RuntimeError("broker says no"))
            else:
                future.set_result(None)

        asyncio.get_running_loop().call_later(0.01, answer)
        return future


async def test_commit_flushes_then_awaits_acks_then_acks() -> None:
    log: list[str] = []
    topic = _Topic(log)
    checkpoint = Checkpoint([_Message(log), _Message(log)], topic)  # type: ignore[list-item, arg-type]

    async def flush() -> None:
        log.append("flush")
        await checkpoint.dead_letter(b"x", None, reason="sink_rejected", stage="s", error="e", source_topic="t")

    await checkpoint.send(topic, b"processed")  # type: ignore[arg-type]
    checkpoint.on_flush(flush)
    checkpoint.after_commit(lambda: log.append("counted"))
    await checkpoint.commit()
    assert log == ["flush", "produced", "produced", "ack", "ack", "counted"]
    assert dict(topic.sent[1]["headers"])["reason"] == b"sink_rejected"


async def test_a_failed_produce_acks_nothing() -> None:
    log: list[str] = []
    topic = _Topic(log, fail=True)
    checkpoint = Checkpoint([_Message(log)], topic)  # type: ignore[list-item, arg-type]
    checkpoint.after_commit(lambda: log.append("counted"))
    await checkpoint.send(topic, b"processed")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="broker says no"):
        await checkpoint.commit()
    assert log == ["produced"]
