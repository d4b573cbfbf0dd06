"""Waiting for a condition with a deadline, instead of sleeping and hoping.

``wait_until(predicate, timeout, message)`` calls ``predicate`` every ``interval`` seconds
until it returns something truthy, and returns that. When ``predicate`` returns an awaitable
(an ``async def`` or a lambda calling one), ``wait_until`` returns a coroutine to await, which
polls without blocking the event loop: ``await wait_until(lambda: count(...), 60, "...")``.

Past the deadline it raises ``WaitTimeout`` (an ``AssertionError``, so pytest shows it as a
failed assertion) with ``message``, the predicate's last value or exception, and the tail of
every log in ``logs``. A process among ``logs`` that exits fails the wait at once: nothing it
was supposed to do will happen any more.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, overload

from tests.support.logs import tail

T = TypeVar("T")

Message = str | Callable[[], str]
"""What failed, as text or as a function building it (called only on failure)."""


class Watched(Protocol):
    """A process whose log goes into a failed wait's message (``tests.support.processes.Process``)."""

    @property
    def name(self) -> str: ...

    @property
    def log(self) -> Path: ...

    def exit_code(self) -> int | None:
        """None while it runs."""
        ...


class WaitTimeout(AssertionError):
    """The condition did not hold within the timeout, or a watched process exited first."""


class _Wait:
    def __init__(self, timeout: float, message: Message, logs: Sequence[Watched | Path],
                 ignore: tuple[type[BaseException], ...]) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.message = message
        self.logs = logs
        self.ignore = ignore
        self.last: object = None
        self.error: BaseException | None = None

    def call(self, predicate: Callable[[], object]) -> object:
        try:
            return predicate()
        except self.ignore as exc:
            self.error = exc
            return None

    async def resolve(self, value: Awaitable[object]) -> object:
        try:
            return await value
        except self.ignore as exc:
            self.error = exc
            return None

    def check(self, value: object) -> None:
        """Raise if the wait is over: past the deadline, or a watched process exited."""
        self.last = value
        exited = [(w.name, code) for w in self.logs
                  if not isinstance(w, Path) and (code := w.exit_code()) is not None]
        if exited:
            raise WaitTimeout(self.failure("; ".join(f"{name} exited with {code}" for name, code in exited)))
        if time.monotonic() >= self.deadline:
            raise WaitTimeout(self.failure(f"not within {self.timeout:g}s"))

    def failure(self, why: str) -> str:
        text = self.message() if callable(self.message) else self.message
        lines = [f"{text} ({why}; last value {self.last!r})"]
        if self.error is not None:
            lines.append(f"last error: {type(self.error).__name__}: {self.error}")
        for watched in self.logs:
            path = watched if isinstance(watched, Path) else watched.log
            lines.append(f"--- the end of {path}:\n{tail(path)}")
        return "\n".join(lines)


@overload
def wait_until(predicate: Callable[[], Awaitable[T]], timeout: float, message: Message, *,
               interval: float = ..., logs: Sequence[Watched | Path] = ...,
               ignore: tuple[type[BaseException], ...] = ...) -> Coroutine[Any, Any, T]: ...


@overload
def wait_until(predicate: Callable[[], T], timeout: float, message: Message, *,
               interval: float = ..., logs: Sequence[Watched | Path] = ...,
               ignore: tuple[type[BaseException], ...] = ...) -> T: ...


def wait_until(predicate: Callable[[], Any], timeout: float, message: Message, *, interval: float = 0.1,
               logs: Sequence[Watched | Path] = (), ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll ``predicate`` until it returns something truthy; return it. See the module docstring.

    ``ignore``: exceptions that mean "not yet" (a server still starting refuses connections).
    """
    wait = _Wait(timeout, message, logs, ignore)
    value = wait.call(predicate)
    if inspect.isawaitable(value):
        return _until_async(wait, predicate, value, interval)
    while not value:
        wait.check(value)
        time.sleep(interval)
        value = wait.call(predicate)
    return value


async def _until_async(wait: _Wait, predicate: Callable[[], Any], first: Awaitable[object],
                       interval: float) -> object:
    value = await wait.resolve(first)
    while not value:
        wait.check(value)
        await asyncio.sleep(interval)
        value = await wait.resolve(predicate())
    return value
