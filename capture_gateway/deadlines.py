"""Deadlines for many short things at once: one periodic sweep instead of a timer each."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("headwater.gateway")

K = TypeVar("K")


class Deadlines(Generic[K]):
    """Things that must be done within ``timeout``; one sweep every ``interval`` expires the late.

    ``add`` when one starts and ``discard`` when it is done, both O(1); a key still present
    after ``timeout`` is removed and passed to ``on_expire``. Deadlines are in insertion order
    (one timeout for all), so a sweep stops at the first key that is not late.
    """

    def __init__(self, timeout: float, on_expire: Callable[[K], None], interval: float = 0.25) -> None:
        self.timeout = timeout
        self._on_expire = on_expire
        self._interval = interval
        self._items: OrderedDict[K, float] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def add(self, key: K) -> None:
        self._items[key] = time.monotonic() + self.timeout
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sweep_forever())

    def discard(self, key: K) -> None:
        self._items.pop(key, None)

    def sweep(self) -> None:
        now = time.monotonic()
        while self._items:
            key, deadline = next(iter(self._items.items()))
            if deadline > now:
                return
            del self._items[key]
            try:
                self._on_expire(key)
            except Exception:  # one failing expiry must not stop the sweeps
                log.exception("expiring a late request failed")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.sweep()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
