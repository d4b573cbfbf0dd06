"""The person rules of a batch, with the store folded in memory (the I/O seam is ``Known``/``Changes``)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.event import Position, person_uuid
from streams.persons.ids import illegal_distinct_id
from streams.persons.memory import MemoryPersonStore
from streams.persons.process import apply_batch
from streams.persons.rules import Applied, Known, Person, PersonBatch, PersonEvent

TEAM = 7


def event(name: str, distinct_id: str, ts: int = 1_000, /, **props: Any) -> PersonEvent:
    return PersonEvent.from_properties(name, distinct_id, ts, props)


class Store:
    """``MemoryPersonStore`` seen from one team, run synchronously: the I/O seam of these tests."""

    def __init__(self) -> None:
        self.memory = MemoryPersonStore()

    @property
    def owners(self) -> dict[str, str]:
        return {d: owner for (_, d), (owner, _) in self.memory.owners.items()}

    @property
    def persons(self) -> dict[str, Person]:
        return {u: p for (_, u), p in self.memory.persons.items()}

    @property
    def overrides(self) -> dict[str, str]:
        return {d: owner for (_, d), owner in self.memory.overrides.items()}

    def known(self) -> Known:
        return asyncio.run(self.memory.load({(TEAM, d) for d in self.owners} | {(TEAM, "-")}))[TEAM]

    def run(self, *events: PersonEvent) -> list[Applied]:
        applied, _ = asyncio.run(apply_batch(self.memory, [(TEAM, e, None) for e in events]))
        return applied

    def person_of(self, distinct_id: str) -> Person:
        return self.persons[self.owners[distinct_id]]


def props(applied: Applied) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(applied.properties_json)
    return result


def test_a_new_person_takes_set_once_then_set_and_the_event_time() -> None:
    store = Store()
    [out] = store.run(event("$pageview", "anon", 5_000, **{"$set_once": {"a": 1, "b": 1}, "$set": {"b": 2}}))
    assert out.person_uuid == person_uuid(TEAM, "anon")
    assert props(out) == {"a": 1, "b": 2}
    assert out.created_at == 5_000
    person = store.person_of("anon")
    assert (person.version, person.is_identified) == (0, False)


def test_set_overwrites_set_once_does_not_unset_removes_and_each_write_bumps_the_version() -> None:
    store = Store()
    store.run(event("$pageview", "u", **{"$set": {"plan": "free", "x": 1}}))
    out = store.run(
        event("$set", "u", **{"$set": {"plan": "pro"}}),
        event("e", "u", **{"$set_once": {"plan": "enterprise", "first": True}}),
        event("e", "u", **{"$unset": ["x"]}),
        event("e", "u", **{"$set": {"plan": "pro"}}),  # the same value: no write
    )
    assert [props(o) for o in out] == [
        {"plan": "pro", "x": 1}, {"plan": "pro", "x": 1, "first": True}, {"plan": "pro", "first": True},
        {"plan": "pro", "first": True}]
    assert store.person_of("u").version == 3


def test_a_change_to_volatile_keys_only_is_not_written_on_ordinary_events() -> None:
    store = Store()
    store.run(event("$pageview", "u", **{"$set": {"$current_url": "/a", "$browser": "Firefox"}}))
    batch = PersonBatch(TEAM, store.known(), person_uuid)
    out = batch.apply(event("$pageview", "u", **{"$set": {"$current_url": "/b", "$browser": "Chrome"}}))
    assert props(out) == {"$current_url": "/a", "$browser": "Firefox"}
    assert batch.changes().empty
    # a $set event, or a change that is not only volatile, is written
    store.run(event("$set", "u", **{"$set": {"$current_url": "/c"}}))
    assert store.person_of("u").properties["$current_url"] == "/c"
    store.run(event("$pageview", "u", **{"$set": {"$current_url": "/d", "plan": "pro"}}))
    assert store.person_of("u").properties == {"$current_url": "/d", "$browser": "Firefox", "plan": "pro"}


def test_identify_of_two_unknown_ids_makes_one_identified_person_with_both() -> None:
    store = Store()
    [out] = store.run(event("$identify", "user", **{"$anon_distinct_id": "anon", "$set": {"email": "a@b"}}))
    assert store.owners == {"user": out.person_uuid, "anon": out.person_uuid}
    assert out.person_uuid == person_uuid(TEAM, "user")
    assert store.person_of("anon").is_identified
    assert props(out) == {"email": "a@b"}


def test_an_anonymous_visitor_who_identifies_keeps_one_person() -> None:
    store = Store()
    views = store.run(*(event("$pageview", "anon", ts) for ts in range(10)))
    [identify] = store.run(event("$identify", "user", 100, **{"$anon_distinct_id": "anon"}))
    assert {v.person_uuid for v in views} == {identify.person_uuid}
    assert store.owners["user"] == store.owners["anon"]
    assert store.person_of("user").is_identified
    assert store.overrides == {}  # nobody moved: no override needed


def test_merging_two_persons_keeps_the_target_wins_the_earlier_created_at_and_moves_ids() -> None:
    store = Store()
    store.run(event("$pageview", "anon", 10, **{"$set": {"a": "anon", "only_anon": 1}}))
    store.run(event("$pageview", "user", 50, **{"$set": {"a": "user"}}))
    source, target = store.person_of("anon"), store.person_of("user")
    [out] = store.run(event("$identify", "user", 60, **{"$anon_distinct_id": "anon", "$set": {"b": 1}}))
    assert out.person_uuid == target.uuid
    merged = store.person_of("user")
    assert merged.properties == {"a": "user", "only_anon": 1, "b": 1}
    assert merged.created_at == 10
    assert merged.version == max(source.version, target.version) + 1
    assert source.uuid not in store.persons
    assert store.owners["anon"] == target.uuid
    assert store.overrides == {"anon": target.uuid}


def test_an_identified_source_is_not_merged_except_dangerously() -> None:
    store = Store()
    store.run(event("$identify", "alice", **{"$anon_distinct_id": "a-anon"}),
              event("$identify", "bob", **{"$anon_distinct_id": "b-anon"}))
    [refused] = store.run(event("$identify", "bob", **{"$anon_distinct_id": "alice"}))
    assert refused.warning is not None
    assert refused.warning.type == "cannot_merge_already_identified"
    assert store.owners["alice"] != store.owners["bob"]
    [merged] = store.run(event("$merge_dangerously", "bob", alias="alice"))
    assert merged.warning is None
    assert store.owners["alice"] == store.owners["bob"] == store.owners["a-anon"] == merged.person_uuid
    assert store.overrides == {"alice": merged.person_uuid, "a-anon": merged.person_uuid}  # every id of the source


@pytest.mark.parametrize("bad", ["anonymous", "Guest", "DISTINCT_ID", "null", "0", "NaN", "[object Object]",
                                 "  ", "", '"undefined"', "'null'", "None"])
def test_an_illegal_id_is_never_merged_but_the_event_still_gets_its_person(bad: str) -> None:
    assert illegal_distinct_id(bad)
    store = Store()
    [out] = store.run(event("$identify", "user", **{"$anon_distinct_id": bad, "$set": {"k": 1}}))
    assert out.warning is not None
    assert out.warning.type == "cannot_merge_with_illegal_distinct_id"
    assert list(store.owners) == ["user"]
    assert props(out) == {"k": 1}


@pytest.mark.parametrize("good", ["user-1", "Null-ish", "00", "anonymous-42", "nan"])
def test_ordinary_ids_are_legal(good: str) -> None:
    assert not illegal_distinct_id(good)


def test_identify_with_itself_is_an_ordinary_event() -> None:
    store = Store()
    [out] = store.run(event("$identify", "u", **{"$anon_distinct_id": "u"}))
    assert out.warning is None
    assert list(store.owners) == ["u"]
    assert not store.person_of("u").is_identified


def test_inside_one_batch_a_created_person_merged_away_is_never_written_and_its_ids_get_overrides() -> None:
    store = Store()
    store.run(event("$pageview", "user", 1, **{"$set": {"plan": "pro"}}))
    target = store.owners["user"]
    out = store.run(event("$pageview", "anon", 5, **{"$set": {"seen": True}}),
                    event("$identify", "user", 6, **{"$anon_distinct_id": "anon"}),
                    event("$pageview", "anon", 7))
    assert out[0].person_uuid == person_uuid(TEAM, "anon")  # the event left before the merge
    assert out[1].person_uuid == out[2].person_uuid == target
    assert set(store.persons) == {target}
    assert store.overrides == {"anon": target}
    assert store.person_of("user").properties == {"plan": "pro", "seen": True}
    assert store.person_of("user").created_at == 1


def test_chained_merges_in_one_batch_end_at_the_last_target() -> None:
    store = Store()
    store.run(event("e", "a"), event("e", "b"), event("e", "c"))
    store.run(event("$merge_dangerously", "b", alias="a"), event("$merge_dangerously", "c", alias="b"))
    assert store.owners["a"] == store.owners["b"] == store.owners["c"] == person_uuid(TEAM, "c")
    assert set(store.persons) == {person_uuid(TEAM, "c")}


def test_a_batch_applied_again_after_it_was_written_ends_in_the_same_state() -> None:
    """A worker killed after the write and before the commit replays the batch: same persons.

    (Versions may move again: a ``$set_once`` then ``$unset`` of one key is re-applied. Skipping
    what was already written needs the store's per-partition watermark, not the rules.)"""
    store = Store()
    store.run(event("e", "user", 1, **{"$set": {"v": 0}}))
    batch = [event("e", "anon", 2, **{"$set_once": {"first": 1}}),
             event("$identify", "user", 3, **{"$anon_distinct_id": "anon", "$set": {"v": 1}}),
             event("e", "user", 4, **{"$unset": ["first"]})]
    store.run(*batch)
    before = store.known()
    store.run(*batch)
    after = store.known()
    assert after.owners == before.owners
    assert {u: (p.properties, p.created_at, p.is_identified) for u, p in after.persons.items()} == {
        u: (p.properties, p.created_at, p.is_identified) for u, p in before.persons.items()}
    assert all(after.persons[u].version >= p.version for u, p in before.persons.items())


def test_a_batch_of_known_persons_with_nothing_new_writes_nothing() -> None:
    store = Store()
    store.run(event("$identify", "user", **{"$anon_distinct_id": "anon", "$set": {"plan": "pro"}}))
    batch = PersonBatch(TEAM, store.known(), person_uuid)
    for e in [event("$pageview", "user", **{"$set": {"plan": "pro"}}), event("$pageview", "anon"),
              event("$identify", "user", **{"$anon_distinct_id": "anon"})]:
        batch.apply(e)
    assert batch.changes().empty


def test_a_batch_read_again_after_a_crash_is_not_applied_twice() -> None:
    """Partition 0's batch was written, but its offsets never reached Kafka; meanwhile partition 1
    changed the same person. Read again, the batch must not put its older $set back."""
    memory = MemoryPersonStore()

    def on(partition: int, offset: int) -> Position:
        return Position("events_raw", partition, offset)

    first = [(TEAM, event("e", "u", **{"$set": {"plan": "free"}}), on(0, 10)),
             (TEAM, event("e", "u", **{"$set_once": {"first": 1}}), on(0, 11))]
    asyncio.run(apply_batch(memory, first))
    asyncio.run(apply_batch(memory, [(TEAM, event("e", "u", **{"$set": {"plan": "pro"}}), on(1, 7))]))
    again = [*first, (TEAM, event("e", "u", **{"$set": {"seen": True}}), on(0, 12))]
    applied, _ = asyncio.run(apply_batch(memory, again))
    [person] = memory.persons.values()
    assert person.properties == {"plan": "pro", "first": 1, "seen": True}
    assert [props(a)["plan"] for a in applied] == ["pro", "pro", "pro"]  # replayed: the person as it is now
    assert memory.offsets == {("events_raw", 0): (12, 0), ("events_raw", 1): (7, 0)}
    # read a third time, nothing is new: nothing is written
    _, written = asyncio.run(apply_batch(memory, again))
    assert written.persons == []


def test_a_batch_split_inside_an_envelope_applies_both_halves() -> None:
    """The stage runner bisects a failing batch; a half may end inside an envelope, and the
    other half's events of that envelope are new, not applied already."""
    memory = MemoryPersonStore()
    envelope = [(TEAM, event("e", f"u{i}", **{"$set": {"n": i}}), Position("events_raw", 0, 10, i)) for i in range(6)]
    asyncio.run(apply_batch(memory, envelope[:3]))
    asyncio.run(apply_batch(memory, envelope[3:]))
    assert sorted(p.properties["n"] for p in memory.persons.values()) == list(range(6))
    assert memory.offsets == {("events_raw", 0): (10, 5)}


def test_a_batch_never_changes_the_persons_it_started_from() -> None:
    """A batch works on copies (a conflict replays it from the same ``Known``); a shallow copy suffices."""
    held = Person("u-1", 5, {"plan": "free", "tags": ["a"]}, False, 3)
    known = Known({"d-1": "u-1", "d-2": "u-2"}, {"u-1": held, "u-2": Person("u-2", 1, {"x": 1}, True, 1)})
    batch = PersonBatch(TEAM, known, person_uuid)
    batch.apply(event("$pageview", "d-1", 10, **{"$set": {"plan": "pro"}, "$unset": ["tags"]}))
    batch.apply(event("$merge_dangerously", "d-1", 11, alias="d-2"))
    assert held == Person("u-1", 5, {"plan": "free", "tags": ["a"]}, False, 3)
    assert known.persons["u-2"] == Person("u-2", 1, {"x": 1}, True, 1)

