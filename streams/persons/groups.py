"""Groups: ``$groups`` on events fills ``$group_0..4``; ``$groupidentify`` sets a group's properties.

A project has at most ``MAX_GROUP_TYPES`` group types, numbered 0 to 4 in the order they are
first seen; a sixth type is ignored. A group key is at most ``MAX_GROUP_KEY`` characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_GROUP_TYPES = 5
MAX_GROUP_KEY = 400


@dataclass
class GroupUpdate:
    """What a batch's ``$groupidentify`` events set on one group (later events' keys win)."""

    team_id: int
    group_type_index: int
    group_key: str
    timestamp: int
    properties: dict[str, Any] = field(default_factory=dict)


def group_key(value: object) -> str | None:
    """A group key as the events table stores it: text (numbers too); None for no key."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value)
    return text or None


def combine(updates: Iterable[GroupUpdate]) -> list[GroupUpdate]:
    """One update per group, in the order groups were first named, properties merged in order."""
    combined: dict[tuple[int, int, str], GroupUpdate] = {}
    for update in updates:
        key = (update.team_id, update.group_type_index, update.group_key)
        held = combined.get(key)
        if held is None:
            combined[key] = GroupUpdate(update.team_id, update.group_type_index, update.group_key,
                                        update.timestamp, dict(update.properties))
        else:
            held.properties.update(update.properties)
            held.timestamp = min(held.timestamp, update.timestamp)
    return list(combined.values())


def next_indexes(held: Mapping[str, int], wanted: Iterable[str]) -> dict[str, int]:
    """Free indexes for the ``wanted`` types not ``held`` yet, in order, while any are free."""
    free = [i for i in range(MAX_GROUP_TYPES) if i not in set(held.values())]
    assigned: dict[str, int] = {}
    for name in wanted:
        if name not in held and name not in assigned and free:
            assigned[name] = free.pop(0)
    return assigned
