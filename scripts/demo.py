"""make demo: the whole pipeline on this machine, fed by the real PostHog Python SDK.

Starts the local stack, migrates, runs gateway and worker in the background, sends a few
hundred sample events (pageviews, identifies, custom events), waits until ClickHouse has them
all, and prints what landed. Leaves everything running; `headwater down` stops it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from posthog import Posthog
from rich.console import Console
from rich.table import Table

from headwater.migrate import migrate
from headwater.runtime.projects import Project, create_project, list_projects
from headwater.runtime.settings import Settings
from headwater.runtime.topology import load_topology
from headwater.stack import manager
from headwater.stack.apps import APPS, stale_topology, start_apps
from headwater.stack.endpoints import resolve_endpoints
from sinks.clickhouse.client import QueryResult
from sinks.clickhouse.client import connect as clickhouse_connect

console = Console()
PAGES = ["/", "/pricing", "/docs", "/docs/quickstart", "/blog/launch", "/signup", "/dashboard"]
USERS = 40


START = time.monotonic()


def step(message: str) -> None:
    console.print(f"[bold blue]==>[/] [dim]{time.monotonic() - START:5.1f}s[/] {message}")


async def query(url: str, sql: str) -> QueryResult:
    client = clickhouse_connect(url)
    try:
        return await client.select(sql)
    finally:
        await client.aclose()


def send_events(token: str, host: str) -> int:
    """Sample traffic for USERS visitors; returns how many events the SDK was asked to send."""
    rng = random.Random(7)
    client = Posthog(token, host=host, flush_at=50, gzip=True)
    sent = 0
    for n in range(USERS):
        anon = f"anon-{uuid.uuid4()}"
        for _ in range(rng.randint(3, 8)):
            page = rng.choice(PAGES)
            client.capture("$pageview", distinct_id=anon, properties={
                "$current_url": f"https://example.com{page}", "$pathname": page,
                "$browser": rng.choice(["Chrome", "Firefox", "Safari"]), "$os": rng.choice(["Mac OS X", "Windows"]),
            })
            sent += 1
        if n % 2 == 0:
            user = f"user-{n}@example.com"
            client.capture("$identify", distinct_id=user, properties={
                "$anon_distinct_id": anon, "$set": {"email": user, "plan": rng.choice(["free", "pro"])},
            })
            client.capture("signed_up", distinct_id=user, properties={"source": rng.choice(["ads", "blog", "docs"])})
            sent += 2
            if rng.random() < 0.5:
                client.capture("purchase", distinct_id=user, properties={"amount": rng.choice([9, 29, 99])})
                sent += 1
    client.shutdown()
    return sent


def show(result: QueryResult, title: str) -> None:
    table = Table(*result.columns, title=title, title_justify="left")
    for row in result.rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)


async def main() -> None:
    settings = Settings()
    step("starting the local stack (Kafka, Postgres, Redis, embedded ClickHouse)")
    manager.up(settings, progress=lambda m: console.print(f"    {m}"))
    endpoints = resolve_endpoints(settings)
    step("migrating: Kafka topics, Postgres schema, ClickHouse tables")
    await migrate(endpoints, load_topology(settings.topology), lambda m: console.print(f"    {m}"))
    projects = [p for p in await list_projects(endpoints.postgres) if p.name == "demo"]
    project: Project = projects[0] if projects else await create_project(endpoints.postgres, "demo")
    step(f"project 'demo' (id {project.id}), API token {project.api_token}")
    stale = stale_topology(settings)
    if stale:  # an edited topology (a plugin added): the running apps would keep the old one
        step(f"{' and '.join(stale)} run an earlier {settings.topology}: restarting them")
        manager.down(settings, progress=lambda m: console.print(f"    {m}"), only=set(APPS))
    step("starting gateway and worker in the background")
    apps = start_apps(settings)
    host = apps["gateway"].url
    console.print(f"    gateway at {host}, worker log {apps['worker'].log}")

    table = f"events FINAL WHERE team_id = {project.id}"
    before = int((await query(endpoints.clickhouse, f"SELECT count() FROM {table}")).rows[0][0])
    step("sending sample events with the PostHog Python SDK")
    sent = send_events(project.api_token, host)
    console.print(f"    {sent} events sent")

    step("waiting until ClickHouse has them all")
    deadline = time.monotonic() + 180
    landed = 0
    with console.status("") as status:
        while time.monotonic() < deadline:
            landed = int((await query(endpoints.clickhouse, f"SELECT count() FROM {table}")).rows[0][0]) - before
            status.update(f"    {landed}/{sent} events queryable")
            if landed >= sent:
                break
            await asyncio.sleep(0.5)
    if landed < sent:
        console.print(f"[red]only {landed} of {sent} events arrived within 3 minutes; see {apps['worker'].log}[/]")
        raise SystemExit(1)
    step(f"all {sent} events queryable")

    show(await query(endpoints.clickhouse, f"SELECT event, count() AS events, uniqExact(distinct_id) AS people "
                                           f"FROM {table} GROUP BY event ORDER BY events DESC"), "Events by name")
    show(await query(endpoints.clickhouse, f"SELECT timestamp, event, distinct_id, "
                                           f"JSONExtractString(properties, '$pathname') AS path "
                                           f"FROM {table} ORDER BY timestamp DESC LIMIT 5"), "Latest events")
    console.print(f"""
[bold green]Headwater is running.[/]
  send events    point any PostHog SDK at {host} with the token {project.api_token}
  query          .venv/bin/headwater query "SELECT event, count() FROM events FINAL GROUP BY event"
  status, logs   .venv/bin/headwater status   (logs in {settings.state_dir / 'logs'})
  stop           .venv/bin/headwater down
""")


if __name__ == "__main__":
    asyncio.run(main())
