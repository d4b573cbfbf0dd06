"""``event_restrictions``: the project's restrictions, applied again in the worker.

The gateway applies them at capture; this stage applies them to events that reach the
pipeline another way (replays, imports, producers other than the gateway, restrictions added
while events were queued). ``drop`` drops, ``dead_letter`` dead-letters, and
``skip_person_processing`` marks the event; ``force_overflow`` only means something at capture.
"""

from __future__ import annotations

from headwater.runtime.restrictions import actions_for
from streams.event import PipelineEvent
from streams.stages.base import DeadLetter, Drop, EventStage, Ok, Outcome
from streams.stages.registry import NoConfig, register_stage


class EventRestrictions(EventStage):
    def process(self, event: PipelineEvent) -> Outcome:
        project = event.project
        if project is None or not project.restrictions:
            return Ok(event)
        raw = event.raw
        actions = actions_for(project.restrictions, raw["event"], raw["distinct_id"], raw["uuid"])
        if "drop" in actions:
            return Drop("event_restriction")
        if "dead_letter" in actions:
            return DeadLetter("event_restriction")
        if "skip_person_processing" in actions:
            raw["skip_person_processing"] = True
        return Ok(event)

register_stage(
    "event_restrictions", NoConfig, lambda name, _config, _resources: EventRestrictions(name),
    "The project's event restrictions (drop, dead_letter, …).",
)
