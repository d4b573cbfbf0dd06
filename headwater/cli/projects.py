"""``headwater project …`` and ``headwater restrictions …``: tokens, limits and event restrictions."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Column, Table

from headwater.cli.output import JsonFlag, console, print_json, say, settings
from headwater.errors import ConfigError
from headwater.runtime import projects as store
from headwater.runtime import restrictions as rules
from headwater.stack.endpoints import resolve_service

project_app = typer.Typer(no_args_is_help=True, help="Projects: API tokens, quotas, rate limits.")
restrictions_app = typer.Typer(no_args_is_help=True, help="Per-project event restrictions applied at capture.")

ProjectRef = Annotated[str, typer.Argument(help="Project id, API token or name.")]


def _dsn() -> str:
    return resolve_service(settings(), "postgres")


def _show_projects(found: list[store.Project], as_json: bool) -> None:
    if as_json:
        print_json([{**asdict(p), "restrictions": [asdict(r) for r in p.restrictions]} for p in found])
        return
    _print_records(["id", "name", "api token", "monthly quota", "rate limit/s", "discard ip", "restrictions"],
                   [[str(p.id), p.name, p.api_token, str(p.monthly_event_quota or "-"),
                     str(p.rate_limit_per_second or "-"), "yes" if p.discard_client_ip else "no",
                     str(len(p.restrictions))] for p in found])


def _print_records(headers: list[str], rows: list[list[str]]) -> None:
    """A table when the terminal is wide enough for every value whole, else one ``header: value``
    line per field: a token, name or uuid people copy is never truncated or wrapped."""
    widths = [max([*(len(w) for w in header.split()), *(len(row[i]) for row in rows)])  # headers may wrap
              for i, header in enumerate(headers)]
    if sum(widths) + 3 * len(widths) + 1 <= console.width:  # padding and borders
        table = Table(*(Column(h, width=w) for h, w in zip(headers, widths, strict=True)))
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    for n, row in enumerate(rows):
        if n:
            console.print()
        for header, value in zip(headers, row, strict=True):
            console.print(f"{header}: {value}", soft_wrap=True, highlight=False, markup=False)


@project_app.command("create")
def create(
    name: str,
    token: Annotated[str | None, typer.Option(help="Use this API token instead of a new one.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a project and print its API token (what SDKs send as api_key)."""
    project = asyncio.run(store.create_project(_dsn(), name, token))
    if as_json:
        print_json(asdict(project))
    else:
        console.print(f"project [bold]{project.name}[/] (id {project.id}) token [green]{project.api_token}[/]")


@project_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List live projects with their tokens and limits."""
    _show_projects(asyncio.run(store.list_projects(_dsn())), as_json)


@project_app.command("update")
def update(
    project: ProjectRef,
    monthly_quota: Annotated[int | None, typer.Option(min=0, help="Events a calendar month (UTC).")] = None,
    no_quota: Annotated[bool, typer.Option("--no-quota", help="Remove the monthly quota.")] = False,
    rate_limit: Annotated[float | None, typer.Option(min=0.001, help="Events a second (per gateway).")] = None,
    no_rate_limit: Annotated[bool, typer.Option("--no-rate-limit", help="Remove the rate limit.")] = False,
    discard_ip: Annotated[bool | None, typer.Option("--discard-ip/--keep-ip", help="Drop the client IP.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a project's limits; gateways apply them within the token cache time (30 s by default)."""
    changes: dict[str, object] = {}
    if monthly_quota is not None or no_quota:
        changes["monthly_event_quota"] = None if no_quota else monthly_quota
    if rate_limit is not None or no_rate_limit:
        changes["rate_limit_per_second"] = None if no_rate_limit else rate_limit
    if discard_ip is not None:
        changes["discard_client_ip"] = discard_ip
    if not changes:
        raise ConfigError("nothing to change: give --monthly-quota, --rate-limit, --discard-ip or their --no- forms")
    dsn = _dsn()

    async def apply() -> store.Project:
        found = await store.find_project(dsn, project)
        return await store.update_project(dsn, found.id, **changes)

    _show_projects([asyncio.run(apply())], as_json)


@project_app.command("revoke")
def revoke(project: ProjectRef) -> None:
    """Revoke a project's token: capture answers 401 for it within the token cache time."""
    dsn = _dsn()

    async def apply() -> store.Project:
        found = await store.find_project(dsn, project)
        await store.revoke_project(dsn, found.id)
        return found

    found = asyncio.run(apply())
    say(f"project {found.name} (id {found.id}) revoked")


@restrictions_app.command("add")
def add(
    project: ProjectRef,
    action: Annotated[str, typer.Option(help=f"One of: {', '.join(rules.ACTIONS)}.")],
    event: Annotated[list[str] | None, typer.Option(help="Only events with this name (repeatable).")] = None,
    distinct_id: Annotated[list[str] | None, typer.Option(help="Only this distinct id (repeatable).")] = None,
    uuid: Annotated[list[str] | None, typer.Option(help="Only this event uuid (repeatable).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a restriction; with no filter it applies to every event of the project."""
    if action not in rules.ACTIONS:
        raise ConfigError(f"unknown action {action!r}: use one of {', '.join(rules.ACTIONS)}")
    dsn = _dsn()

    async def apply() -> tuple[store.Project, rules.Restriction]:
        found = await store.find_project(dsn, project)
        added = await rules.add_restriction(dsn, found.id, action, events=event or [],  # type: ignore[arg-type]
                                            distinct_ids=distinct_id or [], uuids=uuid or [])
        return found, added

    found, added = asyncio.run(apply())
    _show_restrictions([(found.id, added)], as_json)


@restrictions_app.command("list")
def list_restrictions(
    project: Annotated[str | None, typer.Argument(help="Project id, token or name; all when omitted.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List restrictions."""
    dsn = _dsn()

    async def fetch() -> list[tuple[int, rules.Restriction]]:
        project_id = (await store.find_project(dsn, project)).id if project else None
        return await rules.list_restrictions(dsn, project_id)

    _show_restrictions(asyncio.run(fetch()), as_json)


@restrictions_app.command("remove")
def remove(restriction_id: int) -> None:
    """Remove a restriction by id."""
    if not asyncio.run(rules.remove_restriction(_dsn(), restriction_id)):
        raise ConfigError(f"no restriction {restriction_id}: `headwater restrictions list` shows them")
    say(f"restriction {restriction_id} removed")


def _show_restrictions(found: list[tuple[int, rules.Restriction]], as_json: bool) -> None:
    if as_json:
        print_json([{"project_id": project_id, **asdict(r)} for project_id, r in found])
        return
    _print_records(["id", "project", "action", "events", "distinct ids", "uuids"],
                   [[str(r.id), str(project_id), r.action, ", ".join(r.events) or "*",
                     ", ".join(r.distinct_ids) or "*", ", ".join(r.uuids) or "*"] for project_id, r in found])
