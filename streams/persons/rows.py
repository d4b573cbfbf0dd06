"""The rows a batch's person writes give ClickHouse's person tables, and their envelopes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from headwater.runtime.topology import PersonTopics
from schemas.serializer import AvroSerializer
from streams.outbox import OutMessage
from streams.persons.rules import Person

ENVELOPE_BYTES = 256_000  # like processed envelopes: well under the broker's message limit
PERSON_ROWS: AvroSerializer[dict[str, list[dict[str, Any]]]] = AvroSerializer("person_rows")
DISTINCT_ID_ROWS: AvroSerializer[dict[str, list[dict[str, Any]]]] = AvroSerializer("person_distinct_id_rows")
GROUP_ROWS: AvroSerializer[dict[str, list[dict[str, Any]]]] = AvroSerializer("group_rows")


@dataclass(frozen=True)
class PersonRow:
    """A person as ClickHouse's ``person`` table holds it (``is_deleted`` rows end a merged person)."""

    team_id: int
    person: Person
    is_deleted: bool = False


@dataclass(frozen=True)
class DistinctIdRow:
    """A distinct id's owner at ``version``: a row of ``person_distinct_id2`` (and of the overrides
    table when a merge moved it)."""

    team_id: int
    distinct_id: str
    person_uuid: str
    version: int


@dataclass(frozen=True)
class GroupRow:
    """A group as ClickHouse's ``groups`` table holds it, after a ``$groupidentify``."""

    team_id: int
    group_type_index: int
    group_key: str
    created_at: int
    properties: dict[str, Any]
    version: int


@dataclass
class Written:
    """What one batch wrote: the rows ClickHouse's person tables get, and them as messages."""

    persons: list[PersonRow] = field(default_factory=list)
    distinct_ids: list[DistinctIdRow] = field(default_factory=list)
    overrides: list[DistinctIdRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)
    messages: list[OutMessage] = field(default_factory=list)


def person_record(row: PersonRow) -> dict[str, Any]:
    p = row.person
    return {"id": p.uuid, "team_id": row.team_id, "created_at": p.created_at,
            "properties": orjson.dumps(p.properties).decode(), "is_identified": p.is_identified,
            "is_deleted": row.is_deleted, "version": p.version}


def distinct_id_record(row: DistinctIdRow) -> dict[str, Any]:
    return {"team_id": row.team_id, "distinct_id": row.distinct_id, "person_id": row.person_uuid,
            "is_deleted": False, "version": row.version}


def group_record(row: GroupRow) -> dict[str, Any]:
    return {"team_id": row.team_id, "group_type_index": row.group_type_index, "group_key": row.group_key,
            "created_at": row.created_at, "properties": orjson.dumps(row.properties).decode(), "version": row.version}


def _chunks(records: list[dict[str, Any]], size: Callable[[dict[str, Any]], int]) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used = 0
    for record in records:
        cost = size(record)
        if current and used + cost > ENVELOPE_BYTES:
            chunks.append(current)
            current, used = [], 0
        current.append(record)
        used += cost
    if current:
        chunks.append(current)
    return chunks


def envelopes(written: Written, topics: PersonTopics) -> list[tuple[str, bytes, int]]:
    """``(topic, value, count)`` of the envelopes carrying ``written``'s rows, each under ``ENVELOPE_BYTES``."""
    out: list[tuple[str, bytes, int]] = []
    people = [person_record(r) for r in written.persons]
    for chunk in _chunks(people, lambda r: len(r["properties"]) + 120):
        out.append((topics.persons, PERSON_ROWS.encode({"persons": chunk}), len(chunk)))
    for topic, rows in ((topics.distinct_ids, written.distinct_ids), (topics.overrides, written.overrides)):
        for chunk in _chunks([distinct_id_record(r) for r in rows], lambda r: len(r["distinct_id"]) + 80):
            out.append((topic, DISTINCT_ID_ROWS.encode({"distinct_ids": chunk}), len(chunk)))
    groups = [group_record(r) for r in written.groups]
    for chunk in _chunks(groups, lambda r: len(r["properties"]) + len(r["group_key"]) + 60):
        out.append((topics.groups, GROUP_ROWS.encode({"groups": chunk}), len(chunk)))
    return out
