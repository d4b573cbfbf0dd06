"""The stage runner turns outcomes and exceptions into each stage's policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pytest

from headwater.runtime.topology import StageSpec
from schemas.events import RawEvent
from streams import runner as runner_module
from streams.errors import PipelineStopped
from streams.event import PipelineEvent
from streams.runner import StageRunner
from streams.stages.base import BaseStage, DeadLetter, Drop, Ok, Outcome, Retry

Policy = Literal["retry", "dead_letter", "drop", "stop"]


def _event(distinct_id: str = "d") -> PipelineEvent:
    raw = RawEvent(uuid="0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", event="e", distinct_id=distinct_id, token="t",
                   timestamp=1, now=1, sent_at=None, ip=None, properties="{}", set=None, set_once=None,
                   historical_migration=False, capture_warnings=[], skip_person_processing=False)
    return PipelineEvent.from_raw(raw, "events_raw")


class Scripted(BaseStage):
    """A stage that plays back outcomes (or raises) per call."""

    def __init__(self, name: str, script: Sequence[Outcome | Exception]) -> None:
        super().__init__(name)
        self.script = script
        self.calls = 0

    async def process(self, event: PipelineEvent) -> Outcome:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        return step if not isinstance(step, Ok) else Ok(event)


def _runner(stage: Scripted, policy: Policy) -> StageRunner:
    return StageRunner([(stage, StageSpec(name=stage.name, type="prepare", on_error=policy))])


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "BACKOFF_START", 0.0)


async def test_ok_drop_and_dead_letter_outcomes() -> None:
    events = [_event("a"), _event("b"), _event("c")]
    stage = Scripted("s", [Ok(events[0]), Drop("bot"), DeadLetter("bad", "why")])
    result = await _runner(stage, "dead_letter").run(events)
    assert [e.raw["distinct_id"] for e in result.passed] == ["a"]
    assert result.dropped == 1
    assert [(f.stage, f.reason, f.error) for f in result.dead_lettered] == [("s", "bad", "why")]


@pytest.mark.parametrize(("policy", "passed", "dropped", "dead"), [
    ("drop", 0, 1, 0),
    ("dead_letter", 0, 0, 1),
])
async def test_exceptions_follow_the_policy(policy: Policy, passed: int, dropped: int, dead: int) -> None:
    stage = Scripted("s", [ValueError("boom")])
    result = await _runner(stage, policy).run([_event()])
    assert (len(result.passed), result.dropped, len(result.dead_lettered)) == (passed, dropped, dead)
    if dead:
        assert result.dead_lettered[0].error == "ValueError: boom"


async def test_retry_policy_retries_then_succeeds_or_dead_letters() -> None:
    flaky = Scripted("s", [ValueError("1"), ValueError("2"), Ok(_event())])
    result = await _runner(flaky, "retry").run([_event()])
    assert (len(result.passed), flaky.calls) == (1, 3)
    broken = Scripted("s", [ValueError("always")])
    result = await _runner(broken, "retry").run([_event()])
    assert (len(result.dead_lettered), broken.calls) == (1, runner_module.MAX_ATTEMPTS)


async def test_retry_outcome_waits_for_the_dependency() -> None:
    stage = Scripted("s", [Retry("down")] * 8 + [Ok(_event())])
    result = await _runner(stage, "dead_letter").run([_event()])
    assert (len(result.passed), stage.calls) == (1, 9)


async def test_stop_policy_raises() -> None:
    with pytest.raises(PipelineStopped):
        await _runner(Scripted("s", [RuntimeError("x")]), "stop").run([_event()])


async def test_later_events_keep_flowing_after_a_failure() -> None:
    events = [_event("a"), _event("b"), _event("c")]
    stage = Scripted("s", [RuntimeError("x"), Ok(events[1]), Ok(events[2])])
    result = await _runner(stage, "dead_letter").run(events)
    assert [e.raw["distinct_id"] for e in result.passed] == ["b", "c"]


async def test_a_dead_letter_carries_the_event_as_it_arrived() -> None:
    from streams.plugins.kv import MemoryKeyValue
    from streams.plugins.stage import PluginStage
    from tests.fixtures.plugins import Raiser

    class Renamer(Scripted):
        async def process(self, event: PipelineEvent) -> Outcome:
            event.raw["event"] = "renamed"
            event.raw["distinct_id"] = "someone-else"
            return Ok(event)

    raiser = PluginStage("raiser", Raiser, Raiser.Config(), MemoryKeyValue())
    runner = StageRunner([
        (Renamer("rename", []), StageSpec(name="rename", type="prepare")),
        (raiser, StageSpec(name="raiser", type="plugin", plugin="x", on_error="dead_letter")),
    ])
    event = _event("d")
    event.properties["boom"] = True
    result = await runner.run([event])
    [failed] = result.dead_lettered
    assert failed.stage == "raiser"
    assert (failed.event.arrived["event"], failed.event.arrived["distinct_id"]) == ("e", "d")
    assert failed.event.raw["event"] == "renamed"  # the rewrite happened; the DLQ does not carry it
