"""When live events count as waiting, and what the historical partitions do then (``streams.priority``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from streams import priority as priority_module
from streams.priority import LivePriority

LIVE = TP("events_raw", 0)
HISTORICAL = TP("events_historical", 0)


@dataclass
class FakeOffsets:
    """The consumer seam: what Kafka and Faust would say, set by each test."""

    highwaters: dict[TP, int] = field(default_factory=dict)
    reads: dict[TP, int] = field(default_factory=dict)
    commits: dict[TP, int] = field(default_factory=dict)
    calls: list[tuple[str, frozenset[TP]]] = field(default_factory=list)

    def assignment(self) -> Iterable[TP]:
        return [LIVE, HISTORICAL]

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)

    def read_offset(self, tp: TP) -> int | None:
        return self.reads.get(tp)

    def committed(self, tp: TP) -> int | None:
        return self.commits.get(tp)

    async def pause(self, tps: Iterable[TP]) -> None:
        self.calls.append(("pause", frozenset(tps)))

    async def resume(self, tps: Iterable[TP]) -> None:
        self.calls.append(("resume", frozenset(tps)))


@dataclass
class _Record:
    tp: TP
    offset: int


@dataclass
class _Message:
    message: _Record


def _handled(priority: LivePriority, *offsets: int) -> None:
    messages: Any = [_Message(_Record(LIVE, o)) for o in offsets]
    priority.live_handled(messages)


def test_live_is_waiting_until_the_live_agent_handled_the_last_offset() -> None:
    offsets = FakeOffsets(highwaters={LIVE: 10}, commits={LIVE: 0})
    priority = LivePriority(["events_raw"], offsets)
    assert priority.live_waiting()
    _handled(priority, 3, 8)
    assert priority.live_waiting()
    _handled(priority, 9)
    assert not priority.live_waiting()


def test_a_caught_up_group_is_not_waiting_and_its_historical_partitions_run() -> None:
    offsets = FakeOffsets(highwaters={LIVE: 500, HISTORICAL: 900}, commits={LIVE: 500}, reads={LIVE: 500})
    assert not LivePriority(["events_raw"], offsets).live_waiting()


def test_a_new_group_waits_for_the_live_backlog_for_a_grace_period(monkeypatch: pytest.MonkeyPatch) -> None:
    offsets = FakeOffsets(highwaters={LIVE: 10})
    priority = LivePriority(["events_raw"], offsets)
    assert priority.live_waiting()  # nothing committed, nothing read yet: it will read from the start
    monkeypatch.setattr(priority_module, "GRACE", 0.0)
    assert not priority.live_waiting()  # nothing read since: nothing to read (its events expired)
    offsets.reads[LIVE] = 4
    assert priority.live_waiting()  # read into the live agent's buffer, not handled


def test_an_unfetched_live_partition_waits_for_a_grace_period_and_other_topics_do_not_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    offsets = FakeOffsets(highwaters={HISTORICAL: 100}, commits={HISTORICAL: 0})
    priority = LivePriority(["events_raw"], offsets)
    assert priority.live_waiting()  # the live partition was not fetched yet: it may hold a backlog
    monkeypatch.setattr(priority_module, "GRACE", 0.0)
    assert not priority.live_waiting()  # still unknown after the grace: it does not hold imports back


async def test_historical_partitions_are_paused_while_live_waits_and_resumed_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(priority_module, "POLL", 0.001)
    offsets = FakeOffsets(highwaters={LIVE: 2}, commits={LIVE: 0})
    priority = LivePriority(["events_raw"], offsets)
    hold = asyncio.create_task(priority.hold_historical("events_historical"))
    try:
        while not offsets.calls:
            await asyncio.sleep(0.001)
        assert offsets.calls == [("pause", frozenset({HISTORICAL}))]
        _handled(priority, 1)
        while len(offsets.calls) < 2:
            await asyncio.sleep(0.001)
        assert offsets.calls[1] == ("resume", frozenset({HISTORICAL}))
    finally:
        hold.cancel()
        await asyncio.gather(hold, return_exceptions=True)
