"""Which records an export sink takes: event names and property conditions (``sinks[].config.filter``).

A filter with nothing set takes every record. ``events`` keeps the records whose ``event`` is one
of the names; each of ``properties`` must hold too (all of them, like PostHog's property
filters): ``{key: plan, op: eq, value: pro}``. A property condition reads ``properties`` (the
event's JSON text is parsed once per record, only when there are conditions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import Field

from sinks.registry import SinkConfig

Op = Literal["eq", "neq", "exists", "not_exists", "gt", "gte", "lt", "lte", "contains"]


class PropertyCondition(SinkConfig):
    """One condition on an event property."""

    key: str = Field(description="The property's name (a top-level key of the event's properties).")
    op: Op = Field("eq", description="How the value compares: eq, neq, exists, not_exists, gt, gte, lt, lte, "
                                     "contains (a substring of a string value).")
    value: str | int | float | bool | None = Field(None, description="What it compares with (not for exists).")

    def holds(self, properties: Mapping[str, Any]) -> bool:
        present = self.key in properties
        if self.op == "exists":
            return present
        if self.op == "not_exists":
            return not present
        actual = properties.get(self.key)
        if self.op == "eq":
            return present and _same(actual, self.value)
        if self.op == "neq":
            return not _same(actual, self.value)
        if self.op == "contains":
            return isinstance(actual, str) and isinstance(self.value, str) and self.value in actual
        wanted = self.value
        if not isinstance(actual, int | float) or not isinstance(wanted, int | float) or \
                isinstance(actual, bool) or isinstance(wanted, bool):
            return False  # only numbers compare by size
        if self.op == "gt":
            return actual > wanted
        if self.op == "gte":
            return actual >= wanted
        if self.op == "lt":
            return actual < wanted
        return actual <= wanted


def _same(actual: object, wanted: object) -> bool:
    """Equal, and a boolean only equals a boolean (Python holds ``True == 1``; JSON does not)."""
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return type(actual) is type(wanted) and actual == wanted
    return actual == wanted


class EventFilter(SinkConfig):
    """The records an export sink takes."""

    events: list[str] | None = Field(None, description="Event names to take; null takes every event.")
    properties: list[PropertyCondition] = Field(default_factory=list,
                                                description="Conditions on properties, all of which must hold.")

    def takes(self, record: Mapping[str, Any]) -> bool:
        if self.events is not None and record.get("event") not in self.events:
            return False
        if not self.properties:
            return True
        properties = record.get("properties")
        if isinstance(properties, str | bytes):
            try:
                properties = orjson.loads(properties)
            except orjson.JSONDecodeError:
                properties = {}
        if not isinstance(properties, Mapping):
            properties = {}
        return all(condition.holds(properties) for condition in self.properties)
