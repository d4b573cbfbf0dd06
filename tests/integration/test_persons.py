"""Persons end to end: the real posthog SDK → gateway → worker (Postgres, Redis) → ClickHouse's
``events``, ``person``, ``person_distinct_id2`` and ``person_distinct_id_overrides`` tables."""

from __future__ import annotations

import json

from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.support.clickhouse import count, select, wait_for_count
from tests.support.processes import StartGateway, StartWorker
from tests.support.topology import Pipeline


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


async def test_an_anonymous_visitor_who_identifies_counts_as_one_person(
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker) -> None:
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    client = sdk(project, gateway.url)
    for i in range(10):
        client.capture("$pageview", distinct_id="anon-1", properties={"i": i, "$set_once": {"first_page": i}})
    client.capture("$identify", distinct_id="user-1",
                   properties={"$anon_distinct_id": "anon-1", "$set": {"email": "u1@example.com"}})
    client.capture("purchased", distinct_id="user-1")
    client.shutdown()
    team = project.id
    await wait_for_count(stack, f"SELECT count() FROM events FINAL WHERE team_id = {team}", 12, logs=[worker.log])
    assert await count(stack, unique_people(team)) == 1
    await wait_for_count(stack, f"SELECT count() FROM person FINAL WHERE team_id = {team} AND is_deleted = 0", 1,
                         logs=[worker.log])
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
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker) -> None:
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    team = project.id
    client = sdk(project, gateway.url)
    for i in range(5):
        client.capture("$pageview", distinct_id="phone", properties={"i": i})
        client.capture("$pageview", distinct_id="laptop", properties={"i": i})
    client.flush()
    await wait_for_count(stack, f"SELECT count() FROM events FINAL WHERE team_id = {team}", 10, logs=[worker.log])
    assert await count(stack, unique_people(team)) == 2
    client.alias(previous_id="laptop", distinct_id="phone")  # $create_alias: phone's person merges into laptop's
    client.shutdown()
    await wait_for_count(stack, f"SELECT count() FROM person_distinct_id_overrides FINAL WHERE team_id = {team}", 1,
                         logs=[worker.log])
    await wait_for_count(stack, f"SELECT count() FROM events FINAL WHERE team_id = {team}", 11, logs=[worker.log])
    assert await count(stack, unique_people(team)) == 1
    await wait_for_count(stack, f"SELECT count() FROM person FINAL WHERE team_id = {team} AND is_deleted = 1", 1,
                         logs=[worker.log])
    assert await count(stack, f"SELECT count() FROM person FINAL WHERE team_id = {team} AND is_deleted = 0") == 1


async def test_an_illegal_id_is_not_merged_and_says_why(
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker) -> None:
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    team = project.id
    client = sdk(project, gateway.url)
    client.capture("$pageview", distinct_id="anonymous")
    client.capture("$identify", distinct_id="user-2", properties={"$anon_distinct_id": "anonymous"})
    client.shutdown()
    await wait_for_count(stack, f"SELECT count() FROM ingestion_warnings WHERE team_id = {team} "
                                f"AND type = 'cannot_merge_with_illegal_distinct_id'", 1, logs=[worker.log])
    assert await count(stack, f"SELECT uniqExact(person_id) FROM events FINAL WHERE team_id = {team}") == 2


async def test_groups_fill_the_group_columns_and_groupidentify_fills_the_groups_table(
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker) -> None:
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    team = project.id
    client = sdk(project, gateway.url)
    client.group_identify("company", "acme", {"plan": "pro"}, distinct_id="admin")
    client.capture("report_viewed", distinct_id="admin", groups={"company": "acme", "project": "p-1"})
    client.shutdown()
    await wait_for_count(stack, f"SELECT count() FROM events FINAL WHERE team_id = {team}", 2, logs=[worker.log])
    [[company, project_key]] = (await select(
        stack, f"SELECT `$group_0`, `$group_1` FROM events FINAL WHERE team_id = {team} "
               f"AND event = 'report_viewed'")).rows
    assert (company, project_key) == ("acme", "p-1")
    await wait_for_count(stack, f"SELECT count() FROM groups FINAL WHERE team_id = {team}", 1, logs=[worker.log])
    [[index, key, properties]] = (await select(
        stack, f"SELECT group_type_index, group_key, group_properties FROM groups FINAL WHERE team_id = {team}")).rows
    assert (index, key, json.loads(properties)) == (0, "acme", {"plan": "pro"})
