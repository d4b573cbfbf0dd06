"""Dead letters can be listed and replayed, and then land."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import httpx
import orjson
import redis

from headwater.runtime.projects import Project, ProjectResolver
from headwater.runtime.restrictions import add_restriction, remove_restriction
from headwater.runtime.settings import Endpoints
from tests.support import ROOT
from tests.support.clickhouse import wait_for_count
from tests.support.processes import StartGateway, StartWorker, headwater_command, stack_env
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until


def _cli(stack: Endpoints, pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack_env(stack), "HEADWATER_TOPOLOGY": str(pipeline.path)}
    return subprocess.run(headwater_command(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)


def _cached_restrictions(redis_url: str, token: str) -> list[object]:
    """The restrictions of the project Redis caches for ``token`` (none when nothing is cached)."""
    with redis.Redis.from_url(redis_url) as client:
        cached = client.get(ProjectResolver.REDIS_PREFIX + token)
    project = json.loads(cached) if cached else None
    return list(project["restrictions"]) if project else []


async def test_dead_lettered_events_are_listed_replayed_and_land(
    stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway, start_worker: StartWorker
) -> None:
    restriction = await add_restriction(stack.postgres, project.id, "dead_letter", events=[],
                                        distinct_ids=["held"], uuids=[])
    gateway = start_gateway(pipeline, HEADWATER_TOKEN_CACHE_SECONDS="1")
    worker = start_worker(pipeline, HEADWATER_TOKEN_CACHE_SECONDS="1")
    held = [str(uuid.uuid4()) for _ in range(3)]
    batch = [{"event": "e", "distinct_id": "held", "uuid": u} for u in held]
    batch.append({"event": "e", "distinct_id": "free", "uuid": str(uuid.uuid4())})
    response = httpx.post(f"{gateway.url}/batch/", content=orjson.dumps({"api_key": project.api_token,
                                                                          "batch": batch}))
    assert response.status_code == 200
    table = f"events FINAL WHERE team_id = {project.id}"
    assert await wait_for_count(stack, f"SELECT count() FROM {table}", 1) == 1

    listed = _cli(stack, pipeline, "dlq", "list", "--json", "--filter", "distinct_id=held")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert sorted(letter["uuid"] for letter in letters) == sorted(held)
    assert {(letter["reason"], letter["stage"]) for letter in letters} == {("event_restriction", "capture")}

    dry = _cli(stack, pipeline, "dlq", "replay", "--filter", "reason=event_restriction", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "3 dead letter(s) would be replayed" in dry.stderr

    assert await remove_restriction(stack.postgres, restriction.id)
    # The worker applies restrictions too, from the project it caches in process and in Redis. A
    # new worker has nothing cached in process; Redis forgets the restriction within a second.
    worker.stop()
    wait_until(lambda: not _cached_restrictions(stack.redis, project.api_token), 10,
               "Redis still holds the removed restriction")
    start_worker(pipeline, HEADWATER_TOKEN_CACHE_SECONDS="1")
    replayed = _cli(stack, pipeline, "dlq", "replay", "--filter", "reason=event_restriction")
    assert replayed.returncode == 0, replayed.stderr
    assert "3 dead letter(s) replayed" in replayed.stderr
    assert await wait_for_count(stack, f"SELECT count() FROM {table}", 4) == 4

    # the replays are recorded: list says when, a second replay skips them, purge deletes them
    listed = json.loads(_cli(stack, pipeline, "dlq", "list", "--json").stdout)
    assert {letter["uuid"] for letter in listed if letter["replayed_at"]} == set(held)
    assert json.loads(_cli(stack, pipeline, "dlq", "list", "--json", "--pending").stdout) == []
    second = _cli(stack, pipeline, "dlq", "replay")
    assert "0 dead letter(s) replayed, 3 replayed before" in second.stderr
    again = _cli(stack, pipeline, "dlq", "replay", "--again", "--dry-run")
    assert "3 dead letter(s) would be replayed" in again.stderr
    purged = _cli(stack, pipeline, "dlq", "purge")
    assert purged.returncode == 0, purged.stderr
    assert "3 replayed letter(s) deleted" in purged.stderr
    assert json.loads(_cli(stack, pipeline, "dlq", "list", "--json").stdout) == []
