"""Persons end to end: the real posthog SDK → gateway → worker (Postgres, Redis) → ClickHouse's
``events``, ``person``, ``person_distinct_id2`` and ``person_distinct_id_overrides`` tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import KafkaException
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.support.clickhouse import count, select, wait_for_count
from tests.support.kafka import holders
from tests.support.processes import StartGateway, StartWorker
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until


def unique_people(team: int) -> str:
    """The query docs/persons.md gives: people as they are now, past events following merges."""
    return f"""
        SELECT count(DISTINCT if(notEmpty(o.distinct_id), o.person_id, e.person_id))
        FROM events AS e FINAL
        LEFT JOIN (SELECT distinct_id, argMax(person_id, version) AS person_id
                   FROM person_distinct_id_overrides WHERE team_id = {team} GROUP BY distinct_id) AS o
            ON e.distinct_id = o.distinct_id
        WHERE e.team_id = {team}"""


def sdk(project: Project, url: str) -> Posthog:
    return Posthog(project.api_token, host=url, flush_at=50, max_retries=0)


@dataclass
class Running:
    """A gateway and a worker on the test's pipeline, and the SDK client sending to them."""

    stack: Endpoints
    team: int
    client: Posthog
    logs: list[Path]

    async def rows(self, table: str, expected: int, where: str = "") -> int:
        """Wait until ``table`` (FINAL) holds ``expected`` rows of the team (``where``: more conditions)."""
        condition = f" AND {where}" if where else ""
        return await wait_for_count(self.stack, f"SELECT count() FROM {table} FINAL WHERE team_id = {self.team}"
                                                f"{condition}", expected, logs=self.logs)


@pytest.fixture
def running(stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
            start_worker: StartWorker) -> Iterator[Running]:
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    client = sdk(project, gateway.url)
    yield Running(stack, project.id, client, [worker.log])
    client.shutdown()  # idempotent: most tests shut it down to flush


async def test_an_anonymous_visitor_who_identifies_counts_as_one_person(
        stack: Endpoints, running: Running) -> None:
    team, client = running.team, running.client
    for i in range(10):
        client.capture("$pageview", distinct_id="anon-1", properties={"i": i, "$set_once": {"first_page": i}})
    client.capture("$identify", distinct_id="user-1",
                   properties={"$anon_distinct_id": "anon-1", "$set": {"email": "u1@example.com"}})
    client.capture("purchased", distinct_id="user-1")
    client.shutdown()
    await running.rows("events", 12)
    assert await count(stack, unique_people(team)) == 1
    await running.rows("person", 1, "is_deleted = 0")
    [[properties, identified]] = (await select(
        stack, f"SELECT properties, is_identified FROM person FINAL WHERE team_id = {team} AND is_deleted = 0")).rows
    assert json.loads(properties)["email"] == "u1@example.com"
    assert json.loads(properties)["first_page"] == 0  # $set_once kept the first
    assert identified == 1
    owners = (await select(stack, f"SELECT distinct_id, toString(person_id) FROM person_distinct_id2 FINAL "
                                  f"WHERE team_id = {team} ORDER BY distinct_id")).rows
    assert [d for d, _ in owners] == ["anon-1", "user-1"]
    assert len({p for _, p in owners}) == 1
    # the event after the identify carries the person as it is then
    [[person_properties]] = (await select(stack, f"SELECT person_properties FROM events FINAL "
                                                 f"WHERE team_id = {team} AND event = 'purchased'")).rows
    assert json.loads(person_properties)["email"] == "u1@example.com"


async def test_merging_two_people_moves_past_events_through_the_overrides(
        stack: Endpoints, running: Running) -> None:
    team, client = running.team, running.client
    for i in range(5):
        client.capture("$pageview", distinct_id="phone", properties={"i": i})
        client.capture("$pageview", distinct_id="laptop", properties={"i": i})
    client.flush()
    await running.rows("events", 10)
    assert await count(stack, unique_people(team)) == 2
    client.alias(previous_id="laptop", distinct_id="phone")  # $create_alias: phone's person merges into laptop's
    client.shutdown()
    await running.rows("person_distinct_id_overrides", 1)
    await running.rows("events", 11)
    assert await count(stack, unique_people(team)) == 1
    await running.rows("person", 1, "is_deleted = 1")
    assert await count(stack, f"SELECT count() FROM person FINAL WHERE team_id = {team} AND is_deleted = 0") == 1


async def test_an_illegal_id_is_not_merged_and_says_why(
        stack: Endpoints, running: Running) -> None:
    team, client = running.team, running.client
    client.capture("$pageview", distinct_id="anonymous")
    client.capture("$identify", distinct_id="user-2", properties={"$anon_distinct_id": "anonymous"})
    client.shutdown()
    await wait_for_count(stack, f"SELECT count() FROM ingestion_warnings WHERE team_id = {team} "
                                f"AND type = 'cannot_merge_with_illegal_distinct_id'", 1, logs=running.logs)
    assert await count(stack, f"SELECT uniqExact(person_id) FROM events FINAL WHERE team_id = {team}") == 2


async def test_groups_fill_the_group_columns_and_groupidentify_fills_the_groups_table(
        stack: Endpoints, running: Running) -> None:
    team, client = running.team, running.client
    client.group_identify("company", "acme", {"plan": "pro"}, distinct_id="admin")
    client.capture("report_viewed", distinct_id="admin", groups={"company": "acme", "project": "p-1"})
    client.shutdown()
    await running.rows("events", 2)
    [[company, project_key]] = (await select(
        stack, f"SELECT `$group_0`, `$group_1` FROM events FINAL WHERE team_id = {team} "
               f"AND event = 'report_viewed'")).rows
    assert (company, project_key) == ("acme", "p-1")
    await running.rows("groups", 1)
    [[index, key, properties]] = (await select(
        stack, f"SELECT group_type_index, group_key, group_properties FROM groups FINAL WHERE team_id = {team}")).rows
    assert (index, key, json.loads(properties)) == (0, "acme", {"plan": "pro"})


async def test_two_workers_on_a_burst_of_merges_lose_no_property_and_make_one_person_per_user(
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker) -> None:
    """Each user's anonymous id, device id and user id hash to different partitions, so the two
    workers apply the two sides of each merge at the same time, in any order."""
    gateway = start_gateway(pipeline)
    workers = [start_worker(pipeline), start_worker(pipeline)]
    raw = pipeline.topology.capture.topic
    wait_until(lambda: holders(stack.kafka, pipeline.group, raw) == 2, 90,
               "the two workers did not share the raw topic", interval=0.5, logs=workers,
               ignore=(KafkaException,))
    team = project.id
    client = sdk(project, gateway.url)
    users = 25
    for i in range(users):
        for distinct_id in (f"anon-{i}", f"device-{i}", f"user-{i}"):
            client.capture("$pageview", distinct_id=distinct_id, properties={"$set": {f"k-{distinct_id}": i}})
    for i in range(users):
        client.capture("$identify", distinct_id=f"user-{i}", properties={"$anon_distinct_id": f"anon-{i}"})
        client.alias(previous_id=f"user-{i}", distinct_id=f"device-{i}")
        client.capture("$set", distinct_id=f"device-{i}", properties={"$set": {"late": i}})
    client.shutdown()
    await wait_for_count(stack, f"SELECT count() FROM events FINAL WHERE team_id = {team}", users * 6,
                         timeout=120, logs=workers)
    async with await psycopg.AsyncConnection.connect(stack.postgres) as conn:
        cur = await conn.execute(
            "SELECT p.uuid::text, p.properties, array_agg(d.distinct_id ORDER BY d.distinct_id) FROM persons p "
            "JOIN person_distinct_ids d ON d.project_id = p.project_id AND d.person_uuid = p.uuid "
            "WHERE p.project_id = %s GROUP BY p.uuid, p.properties", (team,))
        people = await cur.fetchall()
        orphans = await (await conn.execute(
            "SELECT count(*) FROM persons p WHERE p.project_id = %s AND NOT EXISTS (SELECT 1 FROM "
            "person_distinct_ids d WHERE d.project_id = p.project_id AND d.person_uuid = p.uuid)", (team,))).fetchone()
    assert orphans == (0,)
    assert len(people) == users
    for _, properties, ids in people:
        i = int(ids[0].split("-")[1])
        assert ids == [f"anon-{i}", f"device-{i}", f"user-{i}"]
        wanted = {f"k-anon-{i}": i, f"k-device-{i}": i, f"k-user-{i}": i, "late": i}
        assert wanted.items() <= properties.items()  # the SDK's own ($os, ...) besides
    await wait_for_count(stack, f"SELECT count() FROM person FINAL WHERE team_id = {team} AND is_deleted = 0",
                         users, timeout=60, logs=workers)
    assert await count(stack, f"SELECT count() FROM person FINAL WHERE team_id = {team} AND is_deleted = 0") == users


async def test_the_person_rules_one_user_each(
        stack: Endpoints, running: Running) -> None:
    """$unset, the already-identified refusal and $merge_dangerously, personless events, and
    the volatile-keys filter, each on users of its own, through the real SDK."""
    team, client = running.team, running.client
    # first what each rule starts from (merges must find both people there: they are on other partitions)
    client.capture("$set", distinct_id="unset-1", properties={"$set": {"a": 1, "b": 2}})
    for who in ("alice", "bob", "dave", "erin"):
        client.capture("$identify", distinct_id=who, properties={"$anon_distinct_id": f"{who}-anon"})
    client.capture("$pageview", distinct_id="ghost", properties={"$process_person_profile": False,
                                                                 "$set": {"x": 1}})
    client.capture("$pageview", distinct_id="volatile", properties={"$set": {"$current_url": "/a", "plan": "pro"}})
    client.flush()
    await running.rows("events", 7)
    client.capture("$set", distinct_id="unset-1", properties={"$unset": ["a"]})  # $unset removes
    # two identified people: $identify may not merge them, $merge_dangerously may
    client.capture("$identify", distinct_id="bob", properties={"$anon_distinct_id": "alice"})
    client.capture("$merge_dangerously", distinct_id="erin", properties={"alias": "dave"})
    # personless: its identify is dropped with a warning
    client.capture("$identify", distinct_id="ghost", properties={"$process_person_profile": False,
                                                                 "$anon_distinct_id": "ghost-anon"})
    # the volatile keys alone do not write the person again
    client.capture("$pageview", distinct_id="volatile", properties={"$set": {"$current_url": "/b"}})
    client.shutdown()
    await running.rows("events", 11)

    async with await psycopg.AsyncConnection.connect(stack.postgres) as conn:
        async def person_of(distinct_id: str) -> tuple[str, dict[str, object], int] | None:
            cur = await conn.execute(
                "SELECT p.uuid::text, p.properties, p.version FROM persons p JOIN person_distinct_ids d "
                "ON d.project_id = p.project_id AND d.person_uuid = p.uuid "
                "WHERE d.project_id = %s AND d.distinct_id = %s", (team, distinct_id))
            row = await cur.fetchone()
            return None if row is None else (row[0], row[1], row[2])

        unset = await person_of("unset-1")
        assert unset is not None
        assert "a" not in unset[1]
        assert unset[1]["b"] == 2
        alice, bob = await person_of("alice"), await person_of("bob")
        assert alice is not None
        assert bob is not None
        assert alice[0] != bob[0]  # refused: alice was identified
        dave, erin = await person_of("dave"), await person_of("erin")
        assert dave is not None
        assert erin is not None
        assert dave[0] == erin[0]  # dangerously: merged all the same
        assert await person_of("ghost") is None
        volatile = await person_of("volatile")
        assert volatile is not None
        assert volatile[1]["$current_url"] == "/a"
        assert volatile[2] == 0  # created, and not written again for /b
    warnings = (await select(stack, f"SELECT type FROM ingestion_warnings WHERE team_id = {team} ORDER BY type")).rows
    assert ["cannot_merge_already_identified"] in warnings
    assert ["invalid_event_when_process_person_profile_is_false"] in warnings
    [[mode, person_properties]] = (await select(
        stack, f"SELECT person_mode, person_properties FROM events FINAL WHERE team_id = {team} "
               f"AND distinct_id = 'ghost'")).rows
    assert (mode, person_properties) == ("propertyless", "{}")
