"""Event restrictions: per-project rules that drop, dead-letter, overflow or de-person events.

A restriction matches an event when every filter it sets matches (events by name, distinct
ids, uuids; an empty filter matches everything). Set with ``headwater restrictions``; applied
by the gateway before Kafka and cached with the project (changes apply within the token
cache time).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import psycopg
from psycopg.rows import dict_row

from headwater.errors import ConfigError

Action = Literal["drop", "skip_person_processing", "dead_letter", "force_overflow"]
ACTIONS: tuple[str, ...] = get_args(Action)


@dataclass(frozen=True)
class Restriction:
    id: int
    action: Action
    events: tuple[str, ...] = ()
    distinct_ids: tuple[str, ...] = ()
    uuids: tuple[str, ...] = ()

    def matches(self, event: str, distinct_id: str, uuid: str) -> bool:
        return (
            (not self.events or event in self.events)
            and (not self.distinct_ids or distinct_id in self.distinct_ids)
            and (not self.uuids or uuid in self.uuids)
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Restriction:
        """From a database row or its JSON form (lists for the filters)."""
        action = row["action"]
        if action not in ACTIONS:
            raise ConfigError(f"unknown restriction action {action!r}")
        return cls(
            id=int(row["id"]),
            action=action,
            events=tuple(row.get("events") or ()),
            distinct_ids=tuple(row.get("distinct_ids") or ()),
            uuids=tuple(row.get("uuids") or ()),
        )


def actions_for(restrictions: tuple[Restriction, ...], event: str, distinct_id: str, uuid: str) -> set[str]:
    """The actions of every restriction that matches the event."""
    return {r.action for r in restrictions if r.matches(event, distinct_id, uuid)}


def uuid_problems(uuids: list[str]) -> list[str]:
    """The given event uuids that are not uuids: a restriction on them could never match."""
    bad = []
    for value in uuids:
        try:
            uuidlib.UUID(value)
        except ValueError:
            bad.append(value)
    return bad


async def add_restriction(dsn: str, project_id: int, action: Action, *, events: list[str],
                          distinct_ids: list[str], uuids: list[str]) -> Restriction:
    """Add a restriction; ``ConfigError`` for uuids that are not uuids (it would never match)."""
    bad = uuid_problems(uuids)
    if bad:
        raise ConfigError(f"not event uuids: {', '.join(repr(b) for b in bad)} "
                          "(give the uuid the event was captured with, e.g. 0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b)")
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "INSERT INTO event_restrictions (project_id, action, events, distinct_ids, uuids) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id, action, events, distinct_ids, uuids",
            (project_id, action, events, distinct_ids, uuids),
        )
        row = await cur.fetchone()
    assert row is not None
    return Restriction.from_row(row)


async def list_restrictions(dsn: str, project_id: int | None = None) -> list[tuple[int, Restriction]]:
    """``(project_id, restriction)`` pairs, oldest first."""
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT id, project_id, action, events, distinct_ids, uuids FROM event_restrictions "
            "WHERE %(p)s::bigint IS NULL OR project_id = %(p)s ORDER BY id",
            {"p": project_id},
        )
        rows = await cur.fetchall()
    return [(int(row["project_id"]), Restriction.from_row(row)) for row in rows]


async def remove_restriction(dsn: str, restriction_id: int) -> bool:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("DELETE FROM event_restrictions WHERE id = %s", (restriction_id,))
        return cur.rowcount == 1
