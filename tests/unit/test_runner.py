"""The stage runner: one call per stage per batch, and each stage's policy per event."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

import pytest
from prometheus_client import REGISTRY

from headwater.errors import Unavailable
from headwater.runtime.topology import StageSpec
from schemas.events import RawEvent
from streams import runner as runner_module
from streams.errors import PipelineStopped
from streams.event import PipelineEvent
from streams.runner import StageRunner
from streams.stages.base import BaseStage, DeadLetter, Drop, Errored, EventStage, Ok, Outcome, Retry, Stage

Policy = Literal["retry", "dead_letter", "drop", "stop"]


def _event(distinct_id: str = "d") -> PipelineEvent:
    raw = RawEvent(uuid="0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", event="e", distinct_id=distinct_id, token="t",
                   timestamp=1, now=1, sent_at=None, ip=None, properties="{}", set=None, set_once=None,
                   historical_migration=False, capture_warnings=[], skip_person_processing=False)
    return PipelineEvent.from_raw(raw, "events_raw")


def _events(*ids: str) -> list[PipelineEvent]:
    return [_event(i) for i in ids]


class PerEvent(EventStage):
    """A per-event stage: ``script`` maps a distinct id and its attempt (1, 2, …) to an outcome or an exception."""

    def __init__(self, name: str, script: Callable[[str, int], Outcome | Exception]) -> None:
        super().__init__(name)
        self.script = script
        self.attempts: Counter[str] = Counter()
        self.batches: list[list[str]] = []

    async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
        self.batches.append([e.raw["distinct_id"] for e in events])
        return await super().process_batch(events)

    def process(self, event: PipelineEvent) -> Outcome:
        distinct_id = event.raw["distinct_id"]
        self.attempts[distinct_id] += 1
        step = self.script(distinct_id, self.attempts[distinct_id])
        if isinstance(step, Exception):
            raise step
        return Ok(event) if isinstance(step, Ok) else step


class WholeBatch(BaseStage):
    """A batch stage whose call raises ``error`` (or hangs) whenever the batch holds a poison event."""

    def __init__(self, name: str, poison: set[str], error: Exception | None = None, hang: bool = False) -> None:
        super().__init__(name)
        self.poison, self.error, self.hang = poison, error or ValueError("poison"), hang
        self.calls: list[list[str]] = []

    async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
        ids = [e.raw["distinct_id"] for e in events]
        self.calls.append(ids)
        if self.poison & set(ids):
            if self.hang:
                await asyncio.sleep(60)
            raise self.error
        return [Ok(e) for e in events]


def _runner(stage: Stage, policy: Policy, timeout: float = 5.0) -> StageRunner:
    return StageRunner([(stage, StageSpec(name=stage.name, type="prepare", on_error=policy, timeout_seconds=timeout))])


def _passed(result: runner_module.RunResult) -> list[str]:
    return [e.raw["distinct_id"] for e in result.passed]


def _dead(result: runner_module.RunResult) -> list[str]:
    return [f.event.raw["distinct_id"] for f in result.dead_lettered]


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "BACKOFF_START", 0.0)


async def test_one_call_per_stage_per_batch_and_outcomes_per_event() -> None:
    outcomes: dict[str, Outcome] = {"a": Ok(_event()), "b": Drop("bot"), "c": DeadLetter("bad", "why")}
    stage = PerEvent("s", lambda i, _: outcomes[i])
    result = await _runner(stage, "dead_letter").run(_events("a", "b", "c"))
    assert (_passed(result), result.dropped) == (["a"], 1)
    assert [(f.stage, f.reason, f.error) for f in result.dead_lettered] == [("s", "bad", "why")]
    assert stage.batches == [["a", "b", "c"]]


async def test_later_stages_see_only_the_events_that_passed() -> None:
    first = PerEvent("first", lambda i, _: Drop("x") if i == "b" else Ok(_event()))
    second = PerEvent("second", lambda i, _: Ok(_event()))
    runner = StageRunner([(first, StageSpec(name="first", type="prepare")),
                          (second, StageSpec(name="second", type="prepare"))])
    result = await runner.run(_events("a", "b", "c"))
    assert (_passed(result), second.batches) == (["a", "c"], [["a", "c"]])


@pytest.mark.parametrize(("policy", "dropped", "dead"), [("drop", 1, []), ("dead_letter", 0, ["b"])])
async def test_an_event_that_raises_follows_the_policy_alone(policy: Policy, dropped: int, dead: list[str]) -> None:
    stage = PerEvent("s", lambda i, _: ValueError("boom") if i == "b" else Ok(_event()))
    result = await _runner(stage, policy).run(_events("a", "b", "c"))
    assert (_passed(result), result.dropped, _dead(result)) == (["a", "c"], dropped, dead)
    if dead:
        assert result.dead_lettered[0].error == "ValueError: boom"


async def test_retry_policy_calls_again_with_only_the_failed_events() -> None:
    flaky = PerEvent("s", lambda i, n: ValueError(str(n)) if i == "b" and n < 3 else Ok(_event()))
    result = await _runner(flaky, "retry").run(_events("a", "b"))
    assert (_passed(result), flaky.batches) == (["a", "b"], [["a", "b"], ["b"], ["b"]])
    broken = PerEvent("s", lambda i, _: ValueError("always") if i == "b" else Ok(_event()))
    result = await _runner(broken, "retry").run(_events("a", "b"))
    assert (_passed(result), _dead(result), broken.attempts["b"]) == (["a"], ["b"], runner_module.MAX_ATTEMPTS)


async def test_retry_outcomes_and_outages_wait_without_limit() -> None:
    stage = PerEvent("s", lambda i, n: Retry("down") if n <= 8 else Ok(_event()))
    result = await _runner(stage, "dead_letter").run(_events("a"))
    assert (_passed(result), stage.attempts["a"]) == (["a"], 9)
    down = PerEvent("s", lambda i, n: Unavailable("redis is down", "kv_unavailable") if n <= 8 else Ok(_event()))
    result = await _runner(down, "drop").run(_events("a"))
    assert (_passed(result), down.attempts["a"]) == (["a"], 9)


async def test_a_whole_call_outage_is_retried_without_limit() -> None:
    class Down(BaseStage):
        calls = 0

        async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
            self.calls += 1
            if self.calls <= 7:
                raise Unavailable("postgres is down", "projects_unavailable")
            return [Ok(e) for e in events]

    stage = Down("s")
    result = await _runner(stage, "dead_letter").run(_events("a", "b"))
    assert (_passed(result), stage.calls) == (["a", "b"], 8)


async def test_stop_policy_raises() -> None:
    with pytest.raises(PipelineStopped):
        await _runner(PerEvent("s", lambda i, _: RuntimeError("x")), "stop").run(_events("a"))
    with pytest.raises(PipelineStopped):
        await _runner(WholeBatch("s", {"a"}), "stop").run(_events("a", "b"))


@pytest.mark.parametrize("policy", ["dead_letter", "drop", "retry"])
async def test_a_failing_batch_call_is_bisected_to_the_bad_event(policy: Policy) -> None:
    ids = [f"e{i}" for i in range(16)]
    stage = WholeBatch("s", {"e11"})
    result = await _runner(stage, policy).run(_events(*ids))
    assert _passed(result) == [i for i in ids if i != "e11"]
    assert (_dead(result), result.dropped) == (([], 1) if policy == "drop" else (["e11"], 0))
    whole_batch_tries = runner_module.MAX_ATTEMPTS if policy == "retry" else 1
    assert stage.calls[:whole_batch_tries] == [ids] * whole_batch_tries
    assert len(stage.calls) - whole_batch_tries <= 2 * 4  # two halves per level, log2(16) levels


async def test_a_batch_call_that_times_out_is_bisected() -> None:
    stage = WholeBatch("s", {"c"}, hang=True)
    result = await _runner(stage, "dead_letter", timeout=0.05).run(_events("a", "b", "c", "d"))
    assert (_passed(result), _dead(result)) == (["a", "b", "d"], ["c"])
    assert result.dead_lettered[0].error.startswith("StageTimeout: took longer than 0.05s")


async def test_a_wrong_answer_fails_the_call() -> None:
    class Short(BaseStage):
        async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
            return [Ok(e) for e in events[1:]]  # one outcome short, however it is called

    result = await _runner(Short("s"), "dead_letter").run(_events("a", "b"))
    assert _dead(result) == ["a", "b"]
    assert "answered 0 outcomes for 1 events" in result.dead_lettered[0].error


async def test_errored_outcomes_from_a_batch_stage_follow_the_policy() -> None:
    class Mixed(BaseStage):
        async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
            return [Errored(KeyError("x")) if e.raw["distinct_id"] == "b" else Ok(e) for e in events]

    result = await _runner(Mixed("s"), "dead_letter").run(_events("a", "b"))
    assert (_passed(result), _dead(result)) == (["a"], ["b"])


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_are_counted_per_batch() -> None:
    stage = PerEvent("metered", lambda i, _: Drop("bot") if i.startswith("bot") else Ok(_event()))
    ok = {"stage": "metered", "outcome": "ok"}
    before = (_sample("headwater_stream_stage_outcomes_total", ok),
              _sample("headwater_stream_events_dropped_total", {"stage": "metered", "reason": "bot"}))
    await _runner(stage, "dead_letter").run(_events("a", "bot1", "b", "bot2", "c"))
    after = (_sample("headwater_stream_stage_outcomes_total", ok),
             _sample("headwater_stream_events_dropped_total", {"stage": "metered", "reason": "bot"}))
    assert (after[0] - before[0], after[1] - before[1]) == (3, 2)


async def test_a_dead_letter_carries_the_event_as_it_arrived() -> None:
    from streams.plugins.kv import MemoryKeyValue
    from streams.plugins.stage import PluginStage
    from tests.fixtures.plugins import Raiser

    class Renamer(EventStage):
        def process(self, event: PipelineEvent) -> Outcome:
            event.raw["event"] = "renamed"
            event.raw["distinct_id"] = "someone-else"
            return Ok(event)

    raiser = PluginStage("raiser", Raiser, Raiser.Config(), MemoryKeyValue())
    runner = StageRunner([
        (Renamer("rename"), StageSpec(name="rename", type="prepare")),
        (raiser, StageSpec(name="raiser", type="plugin", plugin="x", on_error="dead_letter")),
    ])
    await runner.start()
    calm, event = _event("calm"), _event("d")
    event.properties["boom"] = True
    result = await runner.run([calm, event])
    [failed] = result.dead_lettered
    assert (failed.stage, len(result.passed)) == ("raiser", 1)
    assert (failed.event.arrived["event"], failed.event.arrived["distinct_id"]) == ("e", "d")
    assert failed.event.raw["event"] == "renamed"  # the rewrite happened; the DLQ does not carry it


async def test_a_dead_lettered_error_logs_its_traceback_once_per_error_type(
        caplog: pytest.LogCaptureFixture) -> None:
    def script(distinct_id: str, _attempt: int) -> Outcome | Exception:
        return KeyError(distinct_id) if distinct_id.startswith("k") else ValueError(distinct_id)

    stage = PerEvent("s", script)
    with caplog.at_level(logging.ERROR, logger="headwater"):
        result = await _runner(stage, "dead_letter").run(_events("k1", "k2", "v1", "k3"))
        await _runner(stage, "dead_letter").run(_events("k4"))  # a new runner (a restarted worker) logs again
    assert len(result.dead_lettered) == 4
    logged = [r for r in caplog.records if "stage s failed" in r.getMessage()]
    assert [r.getMessage().split(":")[1].strip() for r in logged] == ["KeyError", "ValueError", "KeyError"]
    assert all(r.exc_info is not None for r in logged)  # with the traceback: the file and the line
