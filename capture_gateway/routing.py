"""Where each accepted event goes: the live topic, overflow, historical, the DLQ, or nowhere.

Order of decisions, per event: a ``drop`` restriction drops it (counted); ``dead_letter`` sends
it to the dead-letter topic; ``skip_person_processing`` marks it; ``historical_migration``
events go to the historical topic (never overflow); ``force_overflow`` or a hot key sends it to
the overflow topic; everything else goes to the live topic, partitioned by ``token:distinct_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from capture_gateway.limits import HotKeys
from headwater.runtime.projects import Project
from headwater.runtime.restrictions import actions_for
from schemas.envelope import event_key
from schemas.events import RawEvent


@dataclass
class Routed:
    live: list[RawEvent] = field(default_factory=list)
    overflow: list[RawEvent] = field(default_factory=list)
    historical: list[RawEvent] = field(default_factory=list)
    dead_letter: list[RawEvent] = field(default_factory=list)
    dropped: list[tuple[RawEvent, str]] = field(default_factory=list)  # (event, cause)

    @property
    def written(self) -> int:
        return len(self.live) + len(self.overflow) + len(self.historical) + len(self.dead_letter)


def route(events: Iterable[RawEvent], project: Project, hot_keys: HotKeys) -> Routed:
    routed = Routed()
    restrictions = project.restrictions
    for event in events:
        actions = (
            actions_for(restrictions, event["event"], event["distinct_id"], event["uuid"]) if restrictions else set()
        )
        if "drop" in actions:
            routed.dropped.append((event, "event_restriction"))
        elif "dead_letter" in actions:
            routed.dead_letter.append(event)
        else:
            if "skip_person_processing" in actions:
                event["skip_person_processing"] = True
            if event["historical_migration"]:
                routed.historical.append(event)
            elif "force_overflow" in actions or hot_keys.is_hot(event_key(event["token"], event["distinct_id"])):
                routed.overflow.append(event)
            else:
                routed.live.append(event)
    return routed
