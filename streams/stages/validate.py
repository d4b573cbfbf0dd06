"""``validate``: events the rest of the pipeline can trust (docs/ingestion.md).

Invalid uuid → dropped with warning ``skipping_event_invalid_uuid``; distinct id empty or
longer than the limit → dropped with ``skipping_event_invalid_distinct_id``; a ``$groups``
key longer than the limit → that group is removed, warning ``group_key_too_long``. Warnings
the gateway raised at capture (``ignored_invalid_timestamp``, ``event_timestamp_in_future``)
are recorded here.
"""

from __future__ import annotations

import re
import uuid

from pydantic import BaseModel, ConfigDict, Field

from streams.event import PipelineEvent
from streams.stages.base import Drop, EventStage, Ok, Outcome, StageResources
from streams.stages.registry import register_stage

CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""How the gateway writes uuids: checked with one match; anything else goes through ``uuid.UUID``."""


def _valid_uuid(value: str) -> bool:
    if CANONICAL_UUID.fullmatch(value):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class ValidateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_distinct_id_length: int = Field(400, ge=1, description="Longer distinct ids are dropped.")
    max_group_key_length: int = Field(400, ge=1, description="Longer group keys are removed from `$groups`.")


class Validate(EventStage):
    def __init__(self, name: str, config: ValidateConfig) -> None:
        super().__init__(name)
        self._config = config

    def process(self, event: PipelineEvent) -> Outcome:
        raw = event.raw
        for warning in raw["capture_warnings"]:
            event.warn(warning)
        if not _valid_uuid(raw["uuid"]):
            event.warn("skipping_event_invalid_uuid", uuid=raw["uuid"])
            return Drop("invalid_uuid")
        distinct_id = raw["distinct_id"]
        if not distinct_id.strip() or len(distinct_id) > self._config.max_distinct_id_length:
            event.warn("skipping_event_invalid_distinct_id", distinct_id=distinct_id[:100])
            return Drop("invalid_distinct_id")
        groups = event.properties.get("$groups")
        if isinstance(groups, dict):
            for group_type, key in list(groups.items()):
                if len(str(key)) > self._config.max_group_key_length:
                    event.warn("group_key_too_long", key=f"{group_type}", group_type=group_type,
                               group_key=str(key)[:100])
                    del groups[group_type]
        return Ok(event)


def _build(name: str, config: ValidateConfig, _resources: StageResources) -> Validate:
    return Validate(name, config)


register_stage("validate", ValidateConfig, _build, "Drops events with an invalid uuid or distinct id; checks groups.")
