"""The person store against the real Postgres and Redis: one read and one write per batch,
conflicts detected and applied again, merges moving every distinct id, a cache that never
goes back to an older person."""

from __future__ import annotations

import asyncio
import uuid as uuid_module
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from headwater.runtime.connections import Connections
from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import PersonTopics
from streams.event import Position, person_uuid
from streams.outbox import OutMessage
from streams.persons.offsets import KafkaTopicIds
from streams.persons.process import PersonConflict, apply_batch
from streams.persons.rules import PersonBatch, PersonEvent
from streams.persons.store import PersonStore
from tests.support.kafka import create_topic, delete_topics
from tests.support.waiting import wait_until


@pytest.fixture
async def store(stack: Endpoints) -> AsyncIterator[PersonStore]:
    connections = await Connections.open(stack.postgres, stack.redis)
    try:
        yield PersonStore(connections.postgres, connections.redis, TOPICS, KafkaTopicIds(stack.kafka))
    finally:
        await connections.close()


# topics of this module's own: the relay test sees only the outbox rows written here
_PREFIX = f"t{uuid_module.uuid4().hex[:8]}_"
TOPICS = PersonTopics(persons=_PREFIX + "persons", distinct_ids=_PREFIX + "ids", overrides=_PREFIX + "overrides",
                      groups=_PREFIX + "groups")


def ev(name: str, distinct_id: str, ts: int = 1_000_000, /, **props: Any) -> PersonEvent:
    return PersonEvent.from_properties(name, distinct_id, ts, props)


def at(team: int, event: PersonEvent, position: Position | None = None) -> tuple[int, PersonEvent, Position | None]:
    """One event of a batch, read from ``position`` (None: from nowhere, never skipped as applied)."""
    return team, event, position


async def rows(store: PersonStore, sql: str, *args: object) -> list[dict[str, Any]]:
    async with store._pool.connection() as conn:
        found: list[dict[str, Any]] = await (await conn.execute(sql, args)).fetchall()
    return found


async def test_a_batch_is_written_once_and_read_back_from_the_cache_and_from_postgres(
        store: PersonStore, project: Project) -> None:
    team = project.id
    applied, written = await apply_batch(store, [
        at(team, ev("$pageview", "anon", 1_000_000, **{"$set": {"plan": "free"}})),
        at(team, ev("$identify", "user", 2_000_000, **{"$anon_distinct_id": "anon", "$set": {"plan": "pro"}})),
    ])
    uuid = person_uuid(team, "anon")
    assert [a.person_uuid for a in applied] == [uuid, uuid]
    assert {(r.distinct_id, r.person_uuid) for r in written.distinct_ids} == {("anon", uuid), ("user", uuid)}
    stored = await rows(store, "SELECT uuid::text, properties, is_identified, version,"
                               " (extract(epoch FROM created_at) * 1000000)::bigint AS created"
                               " FROM persons WHERE project_id = %s", team)
    assert stored == [{"uuid": uuid, "properties": {"plan": "pro"}, "is_identified": True, "version": 0,
                       "created": 1_000_000}]
    for use_cache in (True, False):
        known = (await store.load({(team, "anon"), (team, "user")}, use_cache=use_cache))[team]
        assert dict(known.owners) == {"anon": uuid, "user": uuid}
        assert known.persons[uuid].properties == {"plan": "pro"}
        assert known.persons[uuid].version == 0  # created in one batch: one write


async def test_a_write_that_lost_to_another_writer_conflicts_and_is_applied_again(
        store: PersonStore, project: Project) -> None:
    team = project.id
    await apply_batch(store, [at(team, ev("e", "u", **{"$set": {"a": 1}}))])
    known = (await store.load({(team, "u")}))[team]
    first, second = PersonBatch(team, known, person_uuid), PersonBatch(team, known, person_uuid)
    first.apply(ev("e", "u", **{"$set": {"b": 2}}))
    second.apply(ev("e", "u", **{"$set": {"c": 3}}))
    await store.write({team: first.changes()}, {})
    with pytest.raises(PersonConflict):
        await store.write({team: second.changes()}, {})
    await apply_batch(store, [at(team, ev("e", "u", **{"$set": {"c": 3}}))])  # the stage's retry
    [row] = await rows(store, "SELECT properties FROM persons WHERE project_id = %s", team)
    assert row["properties"] == {"a": 1, "b": 2, "c": 3}


async def test_a_merge_moves_every_distinct_id_of_the_source_deletes_it_and_refreshes_the_cache(
        store: PersonStore, project: Project) -> None:
    team = project.id
    await apply_batch(store, [at(team, ev("e", "bob", **{"$set": {"who": "bob"}})),
                              at(team, ev("e", "alice", 500_000, **{"$set": {"who": "alice", "a": 1}})),
                              at(team, ev("$merge_dangerously", "alice", alias="alice-phone"))])
    alice, bob = person_uuid(team, "alice"), person_uuid(team, "bob")
    await store.load({(team, "alice"), (team, "alice-phone"), (team, "bob")})  # all three cached now
    # only bob's id is in the batch: alice-phone moves although nothing in the batch names it
    _, written = await apply_batch(store, [at(team, ev("$merge_dangerously", "bob", alias="alice"))])
    assert {(r.distinct_id, r.person_uuid) for r in written.overrides} == {("alice", bob), ("alice-phone", bob)}
    assert [(r.person.uuid, r.is_deleted) for r in written.persons if r.is_deleted] == [(alice, True)]
    ids = await rows(store, "SELECT distinct_id, person_uuid::text AS owner FROM person_distinct_ids"
                            " WHERE project_id = %s ORDER BY distinct_id", team)
    assert ids == [{"distinct_id": d, "owner": bob} for d in ("alice", "alice-phone", "bob")]
    assert await rows(store, "SELECT uuid FROM persons WHERE project_id = %s AND uuid = %s", team, alice) == []
    known = (await store.load({(team, "alice-phone")}))[team]  # from the cache
    assert dict(known.owners) == {"alice-phone": bob}
    assert known.persons[bob].properties == {"who": "bob", "a": 1}
    assert known.persons[bob].created_at == 500_000


async def test_two_workers_merging_the_same_people_at_once_end_with_one_consistent_person(
        store: PersonStore, stack: Endpoints, project: Project) -> None:
    team = project.id
    await apply_batch(store, [at(team, ev("e", f"p{i}", **{"$set": {f"k{i}": i}})) for i in range(6)])
    other_connections = await Connections.open(stack.postgres, stack.redis)
    other = PersonStore(other_connections.postgres, other_connections.redis, TOPICS, KafkaTopicIds(stack.kafka))
    try:
        # worker 1 merges p0 <- p1 <- p2 ..., worker 2 the same people the other way round, with $sets
        one = [at(team, ev("$merge_dangerously", f"p{i}", alias=f"p{i + 1}", **{"$set": {"w1": i}})) for i in range(5)]
        two = [at(team, ev("$merge_dangerously", f"p{i + 1}", alias=f"p{i}", **{"$set": {"w2": i}}))
               for i in reversed(range(5))]
        await asyncio.wait_for(asyncio.gather(apply_batch(store, one), apply_batch(other, two)), timeout=60)
    finally:
        await other_connections.close()
    persons = await rows(store, "SELECT uuid::text, properties FROM persons WHERE project_id = %s", team)
    assert len(persons) == 1
    owners = await rows(store, "SELECT DISTINCT person_uuid::text AS owner FROM person_distinct_ids"
                               " WHERE project_id = %s", team)
    assert owners == [{"owner": persons[0]["uuid"]}]
    properties = persons[0]["properties"]
    assert {f"k{i}" for i in range(6)} <= set(properties)
    assert "w1" in properties
    assert "w2" in properties


async def test_the_cache_never_goes_back_to_an_older_version(store: PersonStore, project: Project) -> None:
    team = project.id
    await apply_batch(store, [at(team, ev("e", "u", **{"$set": {"v": 1}}))])
    stale = (await store.load({(team, "u")}, use_cache=False))[team]
    await apply_batch(store, [at(team, ev("e", "u", **{"$set": {"v": 2}}))])
    uuid = person_uuid(team, "u")
    # a slow reader puts what it read (version 0) back after the write (version 1): refused
    await store._cache([(f"headwater:person:{team}:{uuid}", stale.persons[uuid].version, '{"stale": true}')])
    known = (await store.load({(team, "u")}))[team]
    assert known.persons[uuid].properties == {"v": 2}


async def test_rows_a_dead_worker_wrote_but_never_sent_are_relayed_once(store: PersonStore, project: Project) -> None:
    team = project.id
    _, written = await apply_batch(store, [at(team, ev("e", "relayed", **{"$set": {"k": 1}}))])
    assert {m.topic for m in written.messages} == {TOPICS.persons, TOPICS.distinct_ids}
    # nobody sends them (the worker died before Kafka acknowledged): the relay does, once
    sent: list[OutMessage] = []

    async def send(message: OutMessage) -> None:
        sent.append(message)

    await store.relay(send, older_than=0.0)
    assert {m.value for m in written.messages} <= {m.value for m in sent}
    assert await store.relay(send, older_than=0.0) == 0
    # what a live batch had delivered is deleted, not relayed
    _, delivered = await apply_batch(store, [at(team, ev("e", "relayed", **{"$set": {"k": 2}}))])
    for message in delivered.messages:
        assert message.on_delivered is not None
        message.on_delivered()
    assert await store.relay(send, older_than=0.0) == 0


async def test_a_batch_read_again_skips_what_it_applied_until_its_topic_is_created_again(
        store: PersonStore, stack: Endpoints, project: Project) -> None:
    """The applied offsets live in Postgres with the person writes, keyed by Kafka's topic id."""
    team, topic = project.id, f"{_PREFIX}raw_{uuid_module.uuid4().hex[:6]}"
    create_topic(stack.kafka, topic, 2)
    wait_until(lambda: _described(stack.kafka, topic), 30, f"{topic} never showed in the metadata", interval=0.2)
    first = [at(team, ev("e", "r", **{"$set": {"plan": "free"}}), Position(topic, 0, 10))]
    await apply_batch(store, first)
    await apply_batch(store, [at(team, ev("e", "r", **{"$set": {"plan": "pro"}}), Position(topic, 1, 3))])
    applied, written = await apply_batch(store, first)  # read again: partition 0 never committed offset 10
    assert (written.persons, orjson.loads(applied[0].properties_json)) == ([], {"plan": "pro"})
    offsets = await rows(store, 'SELECT partition, "offset" FROM person_offsets WHERE topic = %s ORDER BY 1', topic)
    assert offsets == [{"partition": 0, "offset": 10}, {"partition": 1, "offset": 3}]

    assert delete_topics(stack.kafka, [topic]) == {}
    wait_until(lambda: _created(stack.kafka, topic), 60, f"{topic} could not be created again", interval=0.5)
    wait_until(lambda: _described(stack.kafka, topic), 30, f"{topic} never showed in the metadata", interval=0.2)
    await apply_batch(store, first)  # a new topic's offset 10 is a new event, though this store knew the old id
    [row] = await rows(store, "SELECT properties FROM persons WHERE project_id = %s", team)
    assert row["properties"] == {"plan": "free"}


def _described(bootstrap: str, topic: str) -> bool:
    """Whether the brokers' metadata knows ``topic`` yet (a new topic takes a moment)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.describe_topics(TopicCollection([topic]), request_timeout=5)[topic].result()
    except KafkaException:
        return False
    return True


def _created(bootstrap: str, topic: str) -> bool:
    try:
        create_topic(bootstrap, topic, 2)
    except KafkaException:  # still being deleted
        return False
    return True


async def test_a_person_another_worker_changed_is_read_anew(
        store: PersonStore, stack: Endpoints, project: Project) -> None:
    team = project.id
    await apply_batch(store, [at(team, ev("e", "memo", **{"$set": {"v": 1}}))])
    first = (await store.load({(team, "memo")}))[team]
    assert (await store.load({(team, "memo")}))[team].persons == first.persons  # from the cache
    other_connections = await Connections.open(stack.postgres, stack.redis)
    try:
        other = PersonStore(other_connections.postgres, other_connections.redis, TOPICS, KafkaTopicIds(stack.kafka))
        await apply_batch(other, [at(team, ev("e", "memo", **{"$set": {"v": 2}}))])
    finally:
        await other_connections.close()
    [person] = (await store.load({(team, "memo")}))[team].persons.values()
    assert person.properties == {"v": 2}
