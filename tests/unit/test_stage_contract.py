"""The stage contract, run for every registered stage type and every built-in plugin.

Each needs an entry in ``CONFIGS`` (the config it is tried with); a new stage or built-in
plugin without one fails ``test_every_stage_has_a_contract_config``. Then every stage must:

- refuse unknown config keys;
- build from its config and ``StageResources`` alone, start, and close;
- answer a batch of the sample events (captured through the gateway's own rules) with one
  ``Outcome`` value per event, in order, never an exception or ``Errored``, and an ``Ok``
  carries the event it was given;
- answer the same event the same way twice (redelivery after a crash must not change results),
  and the same in a batch as alone (an event's outcome never depends on its neighbours);
- let an outage of its resources (``headwater.errors.Unavailable``) through for the runner to
  retry, never turning it into a drop or a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from capture_gateway.events import Batch, CaptureContext, now_micros, to_raw_event
from headwater.errors import Unavailable
from headwater.runtime.projects import Project
from headwater.runtime.topology import StageSpec
from streams.components import stage_type
from streams.event import PipelineEvent
from streams.plugins.builtin import BUILTIN
from streams.plugins.kv import MemoryKeyValue
from streams.stages.base import DeadLetter, Drop, Errored, Ok, Outcome, Retry, StageResources
from streams.stages.registry import StageType, stage_types
from tests.fixtures.geoip import write_city_db

PROJECT = Project(id=7, name="contract", api_token="phc_contract")

CONFIGS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "resolve_project": lambda _: {},
    "event_restrictions": lambda _: {},
    "validate": lambda _: {},
    "drop_old_events": lambda _: {"max_age_days": 365},
    "normalize": lambda _: {},
    "persons": lambda _: {},
    "prepare": lambda _: {},
    "plugin:user_agent": lambda _: {},
    "plugin:geoip": lambda tmp: {"database_path": str(write_city_db(tmp / "city.mmdb"))},
    "plugin:property_filter": lambda _: {"drop": ["secret"]},
    "plugin:event_rules": lambda _: {"rules": [{"match": {"event": "old_*"}, "action": "rename", "rename_to": "new"}]},
    "plugin:bot_filter": lambda _: {},
    "plugin:sampling": lambda _: {"rate": 0.5},
}

SAMPLES: list[dict[str, Any]] = [
    {"event": "$pageview", "distinct_id": "user-1",
     "properties": {"$current_url": "https://example.com/", "$raw_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                    "$ip": "1.2.3.4", "secret": "x"}},
    {"event": "$identify", "distinct_id": "user-2", "properties": {"$anon_distinct_id": "anon-2"},
     "$set": {"email": "a@example.com"}},
    {"event": "old_signup", "distinct_id": "user-3", "properties": {"$groups": {"company": "acme"}}},
    {"event": "$pageview", "distinct_id": "bot-1", "properties": {"$raw_user_agent": "Googlebot/2.1"}},
    {"event": "purchase", "distinct_id": "user-4", "properties": {"$process_person_profile": False}},
]


def _spec(key: str) -> StageSpec:
    type_, _, plugin = key.partition(":")
    return StageSpec(name=key.replace(":", "_"), type=type_, plugin=plugin or None)


def _kinds() -> dict[str, StageType]:
    kinds = {name: kind for name, kind in stage_types().items()}
    kinds.update({f"plugin:{p.name}": stage_type(_spec(f"plugin:{p.name}")) for p in BUILTIN})
    return kinds


class _Projects:
    def __init__(self, down: bool = False) -> None:
        self._down = down

    async def resolve(self, token: str) -> Project | None:
        if self._down:
            raise Unavailable("Postgres and Redis are down", "projects_unavailable")
        return PROJECT if token == PROJECT.api_token else None


class _DownKeyValue:
    async def get(self, key: str) -> str | None:
        raise Unavailable("Redis is down", "redis_unavailable")

    async def set(self, key: str, value: str, ttl_seconds: float | None = None) -> None:
        raise Unavailable("Redis is down", "redis_unavailable")

    async def delete(self, key: str) -> None:
        raise Unavailable("Redis is down", "redis_unavailable")

    async def incr(self, key: str, amount: int = 1) -> int:
        raise Unavailable("Redis is down", "redis_unavailable")


def _event(sample: dict[str, Any]) -> PipelineEvent:
    """A sample as the gateway captures it, as it reaches a stage after ``resolve_project``."""
    ctx = CaptureContext(now=now_micros(), ip="1.2.3.4", sent_at_ms=None, engage=False)
    raw = to_raw_event(orjson.loads(orjson.dumps(sample)), PROJECT.api_token, Batch([sample], None, None, False), ctx)
    assert raw is not None
    event = PipelineEvent.from_raw(raw, "events_raw")
    event.team_id, event.project = PROJECT.id, PROJECT
    return event


def _summary(outcome: Outcome) -> tuple[str, Any]:
    if isinstance(outcome, Ok):
        return "ok", (outcome.event.raw["event"], outcome.event.raw["distinct_id"], outcome.event.properties)
    return type(outcome).__name__, getattr(outcome, "reason", None)


def test_every_stage_has_a_contract_config() -> None:
    assert sorted(_kinds()) == sorted(CONFIGS)


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_unknown_config_keys_fail_validation(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no_such_key"):
        _kinds()[key].config.model_validate({**CONFIGS[key](tmp_path), "no_such_key": 1})


@pytest.mark.parametrize("key", sorted(CONFIGS))
async def test_each_sample_gets_an_outcome_and_the_same_one_twice(key: str, tmp_path: Path) -> None:
    resources = StageResources.offline(projects=_Projects(), kv=lambda _: MemoryKeyValue())
    stage = _kinds()[key].build(_spec(key).name, CONFIGS[key](tmp_path), resources)
    await stage.start()
    try:
        batch = [_event(sample) for sample in SAMPLES]
        outcomes = list(await stage.process_batch(batch))
        assert len(outcomes) == len(batch)
        for sample, event, outcome in zip(SAMPLES, batch, outcomes, strict=True):
            assert isinstance(outcome, Ok | Drop | DeadLetter | Retry), (sample, outcome)
            if isinstance(outcome, Ok):
                assert outcome.event is event
        again = await stage.process_batch([_event(sample) for sample in SAMPLES])
        assert [_summary(o) for o in again] == [_summary(o) for o in outcomes]
        for sample, outcome in zip(SAMPLES, outcomes, strict=True):
            [alone] = await stage.process_batch([_event(sample)])
            assert _summary(alone) == _summary(outcome), sample
    finally:
        await stage.close()


@pytest.mark.parametrize("key", sorted(CONFIGS))
async def test_an_outage_of_its_resources_is_left_to_the_runner(key: str, tmp_path: Path) -> None:
    resources = StageResources.offline(projects=_Projects(down=True), kv=lambda _: _DownKeyValue())
    stage = _kinds()[key].build(_spec(key).name, CONFIGS[key](tmp_path), resources)
    healthy = _kinds()[key].build(_spec(key).name, CONFIGS[key](tmp_path),
                                  StageResources.offline(projects=_Projects(), kv=lambda _: MemoryKeyValue()))
    await stage.start()
    await healthy.start()
    try:
        for sample in SAMPLES:
            try:
                [outcome] = await stage.process_batch([_event(sample)])
            except Unavailable:
                continue  # the runner retries the call
            if isinstance(outcome, Errored) and isinstance(outcome.error, Unavailable):
                continue  # the runner retries the event
            # it did not need its resources for this event: it must answer as when they are up
            [expected] = await healthy.process_batch([_event(sample)])
            assert _summary(outcome) == _summary(expected), sample
    finally:
        await stage.close()
        await healthy.close()


async def test_resolve_project_lets_an_outage_through() -> None:
    """The outage check above is not vacuous: a stage that uses its resources raises there."""
    resources = StageResources.offline(projects=_Projects(down=True), kv=lambda _: _DownKeyValue())
    stage = _kinds()["resolve_project"].build("resolve_project", {}, resources)
    with pytest.raises(Unavailable):
        await stage.process_batch([_event(SAMPLES[0])])
