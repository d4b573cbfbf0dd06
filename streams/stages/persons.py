"""``persons``: person processing (docs/ingestion.md). Until the persons issue lands it only applies
``$process_person_profile: false`` (and the ``skip_person_processing`` restriction): person
updates are stripped and person-only events are dropped with a warning."""

from __future__ import annotations

from streams.event import PipelineEvent
from streams.stages.base import Drop, EventStage, Ok, Outcome
from streams.stages.registry import NoConfig, register_stage

PERSON_EVENTS = frozenset({"$identify", "$create_alias", "$merge_dangerously", "$groupidentify"})


class Persons(EventStage):
    def process(self, event: PipelineEvent) -> Outcome:
        if event.processes_person:
            return Ok(event)
        if event.raw["event"] in PERSON_EVENTS:
            event.warn("invalid_event_when_process_person_profile_is_false", event_name=event.raw["event"])
            return Drop("person_event_without_person_processing")
        for key in ("$set", "$set_once", "$unset"):
            event.properties.pop(key, None)
        return Ok(event)

register_stage(
    "persons", NoConfig, lambda name, _config, _resources: Persons(name),
    "Person processing (today: $process_person_profile=false rules).",
)
