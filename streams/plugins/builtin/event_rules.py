"""``event_rules``: rename or drop events by name and property values, first matching rule wins."""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import Field, model_validator

from streams.plugins import Drop, Event, Plugin, PluginConfig, PluginContext

RULE = Drop("rule")


class Match(PluginConfig):
    """What a rule matches: every condition given must hold."""

    event: str = Field("*", min_length=1, description="Event name, or a `*`/`?` glob of names.")
    property: dict[str, Any] = Field(default_factory=dict, description="Properties the event must have, with "
                                                                       "exactly these values.")

    def matches(self, event: Event) -> bool:
        if not fnmatch.fnmatchcase(event.event, self.event):
            return False
        missing = object()
        return all(event.properties.get(key, missing) == value for key, value in self.property.items())


class Rule(PluginConfig):
    """One rule: when ``match`` holds, ``rename`` the event to ``rename_to`` or ``drop`` it."""

    match: Match = Field(description="The conditions (`event`, `property`).")
    action: Literal["rename", "drop"] = Field(description="What to do with a matching event.")
    rename_to: str | None = Field(None, min_length=1, description="The new event name; with `rename` only.")

    @model_validator(mode="after")
    def _rename_to_with_rename(self) -> Rule:
        if self.action == "rename" and self.rename_to is None:
            raise ValueError("`rename` needs `rename_to`")
        if self.action != "rename" and self.rename_to is not None:
            raise ValueError(f"`rename_to` goes with `action: rename`, not {self.action!r}")
        return self


class EventRules(Plugin["EventRules.Config"]):
    """Renames or drops events by name (globs) and property values; the first matching rule wins.

    Events no rule matches pass unchanged. A renamed event is not matched again. A dropped event
    is counted with the reason ``rule``, without an ingestion warning (the rule says to drop it).
    """

    name = "event_rules"

    class Config(PluginConfig):
        rules: list[Rule] = Field(min_length=1, description="The rules, tried in order; see `rules[]` below.")

    async def process(self, event: Event, ctx: PluginContext[EventRules.Config]) -> Event | Drop:
        for rule in self.config.rules:
            if rule.match.matches(event):
                if rule.action == "drop":
                    return RULE
                event.event = rule.rename_to or event.event
                return event
        return event
