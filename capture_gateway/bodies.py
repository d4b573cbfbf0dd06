"""Reading request bodies within a size limit and one deadline per body."""

from __future__ import annotations

import asyncio

from starlette.types import Receive

from capture_gateway.deadlines import Deadlines
from capture_gateway.errors import BadRequest, PayloadTooLarge, RequestTimeout


class BodyReader:
    """Reads request bodies within a size limit and one deadline per body (``RequestTimeout``)."""

    def __init__(self, timeout: float) -> None:
        self._late: set[asyncio.Task[object]] = set()
        self._deadlines: Deadlines[asyncio.Task[object]] = Deadlines(timeout, self._expire,
                                                                     interval=min(1.0, timeout / 4))

    def _expire(self, task: asyncio.Task[object]) -> None:
        self._late.add(task)
        task.cancel()

    async def read(self, receive: Receive, limit: int, declared: str | None) -> bytes:
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        task = asyncio.current_task()
        assert task is not None
        self._deadlines.add(task)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise BadRequest("the client closed the connection before the body arrived", "client_disconnected")
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is larger than {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if task not in self._late:
                raise
            self._late.discard(task)
            task.uncancel()
            raise RequestTimeout(f"the body did not arrive within {self._deadlines.timeout:.0f}s") from None
        finally:
            self._deadlines.discard(task)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def close(self) -> None:
        await self._deadlines.close()
