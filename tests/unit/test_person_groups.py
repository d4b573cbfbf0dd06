"""The persons stage's groups, on the memory store: ``$groups`` → ``$group_0..4``, ``$groupidentify``."""

from __future__ import annotations

from typing import Any

import orjson

from headwater.runtime.projects import Project
from headwater.runtime.topology import PersonTopics
from schemas.events import RawEvent
from streams.event import PipelineEvent, to_processed
from streams.persons.memory import MemoryPersonStore
from streams.persons.rows import GROUP_ROWS
from streams.plugins.kv import MemoryKeyValue
from streams.stages.base import Ok, StageResources
from streams.stages.persons import Persons

PROJECT = Project(id=3, name="p", api_token="phc_groups")


class _Projects:
    async def resolve(self, token: str) -> Project | None:
        return PROJECT


def _event(name: str, distinct_id: str = "u", /, **properties: Any) -> PipelineEvent:
    raw = RawEvent(uuid="0" * 8 + "-0000-4000-8000-" + "0" * 12, event=name, distinct_id=distinct_id,
                   token=PROJECT.api_token, timestamp=1_000, now=1_000, sent_at=None, ip=None,
                   properties=orjson.dumps(properties).decode(), set=None, set_once=None,
                   historical_migration=False, capture_warnings=[], skip_person_processing=False)
    event = PipelineEvent.from_raw(raw, "events_raw")
    event.team_id, event.project = PROJECT.id, PROJECT
    return event


def _stage() -> tuple[Persons, StageResources, MemoryPersonStore]:
    resources = StageResources.offline(_Projects(), lambda _: MemoryKeyValue())
    store = MemoryPersonStore(PersonTopics())
    return Persons("persons", store, resources.outbox), resources, store


async def test_group_types_get_indexes_in_order_of_first_sight_and_a_sixth_is_ignored() -> None:
    stage, _, _ = _stage()
    first = _event("e", **{"$groups": {"company": "acme", "project": 42}})
    later = _event("e", **{"$groups": {t: f"k-{t}" for t in ("company", "a", "b", "c", "d", "e")}})
    outcomes = await stage.process_batch([first, later])
    assert all(isinstance(o, Ok) for o in outcomes)
    assert first.groups == {0: "acme", 1: "42"}
    assert later.groups == {0: "k-company", 2: "k-a", 3: "k-b", 4: "k-c"}
    row = to_processed(later)
    assert [row["group_0"], row["group_1"], row["group_4"]] == ["k-company", "", "k-c"]


async def test_groupidentify_sets_the_groups_properties_once_per_batch_and_sends_its_row() -> None:
    stage, resources, store = _stage()
    await stage.process_batch([
        _event("$groupidentify", **{"$group_type": "company", "$group_key": "acme", "$group_set": {"plan": "free"}}),
        _event("$groupidentify", **{"$group_type": "company", "$group_key": "acme",
                                    "$group_set": {"plan": "pro", "size": 5}}),
    ])
    [group] = store.groups.values()
    assert (group.group_type_index, group.group_key, group.properties) == (0, "acme", {"plan": "pro", "size": 5})
    groups_topic = PersonTopics().groups
    [message] = [m for m in resources.outbox.drain() if m.topic == groups_topic]
    assert GROUP_ROWS.decode(message.value)["groups"][0]["group_key"] == "acme"
    # the same again changes nothing, so nothing is sent
    await stage.process_batch([_event("$groupidentify", **{"$group_type": "company", "$group_key": "acme",
                                                           "$group_set": {"size": 5}})])
    assert [m for m in resources.outbox.drain() if m.topic == groups_topic] == []


async def test_a_groupidentify_with_a_too_long_key_is_not_written_and_says_why() -> None:
    stage, _, store = _stage()
    event = _event("$groupidentify", **{"$group_type": "company", "$group_key": "k" * 401, "$group_set": {"a": 1}})
    await stage.process_batch([event])
    assert store.groups == {}
    assert [w.type for w in event.warnings] == ["group_key_too_long"]
