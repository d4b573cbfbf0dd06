"""Plugin agents at their I/O seam: the events they get, what is committed, and when the worker stops.

The source is a list of envelopes; the real consumer (group ``<app_id>-agent_<name>``) is
covered by tests/integration/test_plugins.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from headwater.errors import Unavailable
from headwater.runtime.topology import AgentSpec
from schemas.dead_letter import Headers
from schemas.events import ProcessedEvent, RawEvent
from schemas.serializer import encode_envelope
from streams.agents import Envelope, consumer_group, events_of, run_agent
from streams.errors import AgentFailed
from streams.plugins import AgentContext, Event


def _raw(name: str, **fields: Any) -> RawEvent:
    record = RawEvent(uuid=f"u-{name}", event=name, distinct_id="d1", token="phc_a", timestamp=1_700_000_000_000_000,
                      now=1, sent_at=None, ip="10.0.0.1", properties="{}", set=None, set_once=None,
                      historical_migration=False, capture_warnings=[], skip_person_processing=False)
    record.update(fields)  # type: ignore[typeddict-item]
    return record


def _processed(name: str, properties: dict[str, Any]) -> ProcessedEvent:
    return ProcessedEvent(
        uuid=f"u-{name}", event=name, properties=orjson.dumps(properties).decode(), timestamp=1_700_000_000_000_000,
        team_id=7, distinct_id="d1", elements_chain="", created_at=1, person_id="p-1",
        person_properties='{"plan": "pro"}', person_created_at=1, person_mode="full", group_0="", group_1="",
        group_2="", group_3="", group_4="", historical_migration=False)


def _envelope(offset: int, *names: str) -> Envelope:
    rows = [_processed(name, {}) for name in names]
    return Envelope("events_processed", 0, offset, b"k", encode_envelope("processed_envelope", [dict(r) for r in rows]))


class ListSource:
    """Hands out its envelopes, then waits (as a consumer at the end of its topic does)."""

    def __init__(self, *envelopes: Envelope) -> None:
        self.waiting = list(envelopes)
        self.committed: list[int] = []
        self.drained = asyncio.Event()

    async def next(self) -> Envelope:
        if not self.waiting:
            self.drained.set()
            await asyncio.Event().wait()
        return self.waiting.pop(0)

    async def commit(self, envelope: Envelope) -> None:
        self.committed.append(envelope.offset)


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Headers]] = []

    async def __call__(self, envelope: Envelope, headers: Headers) -> None:
        self.sent.append((envelope.offset, headers))


def _spec(on_error: str = "stop") -> AgentSpec:
    return AgentSpec.model_validate({"name": "picky", "source": "events_processed", "handler": "m:f",
                                     "on_error": on_error})


CTX = AgentContext(name="picky", app=None, log=logging.getLogger("test.agents"))  # type: ignore[arg-type]


def _picky(seen: list[str]) -> Any:
    async def handler(events: AsyncIterator[Event], ctx: AgentContext) -> None:
        async for event in events:
            if event.event == "boom":
                raise RuntimeError("cannot handle it")
            seen.append(event.event)

    return handler


async def _until_drained(source: ListSource, spec: AgentSpec, handler: Any, dead: DeadLetters) -> None:
    task = asyncio.create_task(run_agent(spec, handler, CTX, source, dead))
    await asyncio.wait_for(source.drained.wait(), 5)
    assert not task.done(), task.result()
    task.cancel()


def test_processed_rows_become_events_with_their_person() -> None:
    row = _processed("order", {"$ip": "1.2.3.4", "$set": {"plan": "pro"}, "$set_once": {"first": "x"}, "n": 1})
    envelope = Envelope("events_processed", 0, 0, None, encode_envelope("processed_envelope", [dict(row)]))
    [event] = events_of(envelope)
    assert event == Event(uuid="u-order", event="order", distinct_id="d1", properties={"$ip": "1.2.3.4", "n": 1},
                          timestamp=datetime.fromtimestamp(1_700_000_000, tz=UTC), team_id=7, ip="1.2.3.4",
                          set={"plan": "pro"}, set_once={"first": "x"}, person_id="p-1",
                          person_properties={"plan": "pro"})


def test_raw_records_become_events_as_plugins_see_them() -> None:
    raw = _raw("signup", properties='{"$set": {"a": 1}, "k": "v"}', set='{"b": 2}')
    envelope = Envelope("events_raw", 0, 0, None, encode_envelope("raw_envelope", [dict(raw)]))
    [event] = events_of(envelope)
    assert (event.team_id, event.ip, event.properties, event.set) == (None, "10.0.0.1", {"k": "v"}, {"a": 1, "b": 2})
    assert event.person_id is None


def test_an_agent_reads_in_a_group_of_its_own() -> None:
    assert consumer_group("headwater", "order_totals") == "headwater-agent_order_totals"


async def test_an_envelope_commits_when_the_next_is_asked_for() -> None:
    seen: list[str] = []
    source = ListSource(_envelope(0, "a", "b"), _envelope(1, "c"), _envelope(2, "d"))
    await _until_drained(source, _spec(), _picky(seen), DeadLetters())
    assert seen == ["a", "b", "c", "d"]
    assert source.committed == [0, 1, 2]  # the last one when the handler asked for more


async def test_stop_returns_the_failure_with_the_failing_envelope_uncommitted() -> None:
    seen: list[str] = []
    source = ListSource(_envelope(0, "a"), _envelope(1, "b", "boom", "c"), _envelope(2, "d"))
    dead = DeadLetters()
    failed = await asyncio.wait_for(run_agent(_spec("stop"), _picky(seen), CTX, source, dead), 5)
    assert isinstance(failed, AgentFailed)
    assert "agent picky failed: RuntimeError: cannot handle it" in str(failed)
    assert (seen, source.committed, dead.sent) == (["a", "b"], [0], [])


async def test_dead_letter_sends_the_envelope_and_goes_on() -> None:
    seen: list[str] = []
    source = ListSource(_envelope(0, "a"), _envelope(1, "b", "boom", "c"), _envelope(2, "d"))
    dead = DeadLetters()
    await _until_drained(source, _spec("dead_letter"), _picky(seen), dead)
    assert seen == ["a", "b", "d"]  # "c" shared the failing envelope: it is in the dead letter
    assert source.committed == [0, 1, 2]
    [(offset, headers)] = dead.sent
    assert offset == 1
    assert (dict(headers)["stage"], dict(headers)["reason"]) == (b"agent_picky", b"agent_failed")


@pytest.mark.parametrize("on_error", ["stop", "dead_letter"])
async def test_a_handler_that_fails_before_reading_stops_the_worker(on_error: str) -> None:
    calls = 0

    async def broken(events: AsyncIterator[Event], ctx: AgentContext) -> None:
        nonlocal calls
        calls += 1
        raise AttributeError("no such thing")

    failed = await asyncio.wait_for(run_agent(_spec(on_error), broken, CTX, ListSource(_envelope(0, "a")),
                                              DeadLetters()), 5)
    assert isinstance(failed, AgentFailed)
    assert "AttributeError: no such thing" in str(failed)
    assert calls == 1  # not called again and again with nothing to dead-letter


@pytest.mark.parametrize("on_error", ["stop", "dead_letter"])
async def test_a_handler_that_returns_stops_the_worker(on_error: str) -> None:
    async def first_only(events: AsyncIterator[Event], ctx: AgentContext) -> None:
        async for _ in events:
            return

    failed = await asyncio.wait_for(run_agent(_spec(on_error), first_only, CTX, ListSource(_envelope(0, "a")),
                                              DeadLetters()), 5)
    assert isinstance(failed, AgentFailed)
    assert "returned" in str(failed)


async def test_a_handler_may_time_out_waiting_for_the_next_event() -> None:
    """``wait_for(anext(events))`` to flush on idle cancels a wait: the stream goes on after it."""
    seen: list[str] = []
    source = ListSource(_envelope(0, "a"))
    timeouts = 0

    async def flushing(events: AsyncIterator[Event], ctx: AgentContext) -> None:
        nonlocal timeouts
        while True:
            try:
                event = await asyncio.wait_for(anext(events), 0.05)
            except TimeoutError:
                timeouts += 1
                if timeouts == 2:
                    source.waiting.append(_envelope(1, "b"))
                continue
            seen.append(event.event)

    task = asyncio.create_task(run_agent(_spec(), flushing, CTX, source, DeadLetters()))
    await asyncio.wait_for(_until(lambda: seen == ["a", "b"]), 5)
    assert not task.done()
    task.cancel()
    assert source.committed == [0, 1]  # each when the event after its last was asked for


async def test_an_outage_hands_the_envelope_out_again_whatever_the_policy() -> None:
    seen: list[str] = []
    source = ListSource(_envelope(0, "a", "b"), _envelope(1, "c"))
    outages = 1

    async def flaky(events: AsyncIterator[Event], ctx: AgentContext) -> None:
        nonlocal outages
        async for event in events:
            if event.event == "b" and outages:
                outages -= 1
                raise Unavailable("the warehouse does not answer", "test")
            seen.append(event.event)

    dead = DeadLetters()
    task = asyncio.create_task(run_agent(_spec("dead_letter"), flaky, CTX, source, dead, backoff=0.01))
    await asyncio.wait_for(source.drained.wait(), 5)
    task.cancel()
    assert seen == ["a", "a", "b", "c"]  # at least once: the envelope again from its start
    assert (source.committed, dead.sent) == ([0, 1], [])


async def test_a_handler_whose_own_await_was_cancelled_has_failed() -> None:
    async def cancelled(events: AsyncIterator[Event], ctx: AgentContext) -> None:
        async for _ in events:
            raise asyncio.CancelledError  # as an awaited task someone else cancelled does

    failed = await asyncio.wait_for(run_agent(_spec(), cancelled, CTX, ListSource(_envelope(0, "a")),
                                              DeadLetters()), 5)
    assert isinstance(failed, AgentFailed)
    assert "CancelledError" in str(failed)


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_each_new_outage_is_logged_and_backs_off_from_the_start(caplog: pytest.LogCaptureFixture) -> None:
    source = ListSource(_envelope(0, "a"), _envelope(1, "b"), _envelope(2, "c"))
    fail_on = {"a": 2, "c": 1}  # two tries in a row on "a", then one later on "c"

    async def flaky(events: AsyncIterator[Event], ctx: AgentContext) -> None:
        async for event in events:
            if fail_on.get(event.event):
                fail_on[event.event] -= 1
                raise Unavailable("down", "test")

    with caplog.at_level(logging.WARNING, logger="test.agents"):
        task = asyncio.create_task(run_agent(_spec(), flaky, CTX, source, DeadLetters(), backoff=0.01))
        await asyncio.wait_for(source.drained.wait(), 5)
        task.cancel()
    warnings = [r.getMessage() for r in caplog.records if "handed out again" in r.getMessage()]
    assert len(warnings) == 2  # the outage on "a" once (not per try), the one on "c" anew
    assert source.committed == [0, 1, 2]
