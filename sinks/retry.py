"""Retrying a destination's transient failures: exponential backoff with jitter, shared by every sink.

A sink retries a ``RetriableSinkError`` inside its ``flush`` (the partition waits, nothing is
committed meanwhile) and lets a ``PermanentSinkError`` through. The delays double from
``BACKOFF_START`` up to ``BACKOFF_CAP`` and each is drawn at random from its upper half, so that
workers retrying the same destination spread out instead of arriving together.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter

from sinks.errors import RetriableSinkError

BACKOFF_START = 0.2
BACKOFF_CAP = 30.0
T = TypeVar("T")


class Backoff:
    """The delays before successive retries of one operation."""

    def __init__(self, start: float | None = None, cap: float | None = None) -> None:
        self._start = BACKOFF_START if start is None else start
        self._cap = BACKOFF_CAP if cap is None else cap
        self._next = self._start

    def delay(self) -> float:
        """The next delay, in seconds (the first is about ``start``)."""
        ceiling = self._next
        self._next = min(self._cap, self._next * 2)
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret


async def retrying(attempt: Callable[[], Awaitable[T]], *, retries: Counter, log: logging.Logger,
                   what: str) -> T:
    """Await ``attempt()`` until it returns, backing off after each ``RetriableSinkError`` (counted
    in ``retries``, a sink-labelled counter); any other exception propagates."""
    backoff = Backoff()
    while True:
        try:
            return await attempt()
        except RetriableSinkError as exc:
            retries.inc()
            pause = backoff.delay()
            log.warning("%s failed, retrying in %.1fs: %s", what, pause, exc)
            await asyncio.sleep(pause)
