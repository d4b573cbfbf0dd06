"""``drop_old_events``: events whose timestamp is older than a limit are dropped (counted)."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from streams.event import PipelineEvent
from streams.stages.base import Drop, EventStage, Ok, Outcome, StageResources
from streams.stages.registry import register_stage


class DropOldEventsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_age_days: float = Field(gt=0, description="Events older than this many days (by event time) are dropped.")


class DropOldEvents(EventStage):
    def __init__(self, name: str, config: DropOldEventsConfig) -> None:
        super().__init__(name)
        self._max_age_micros = int(config.max_age_days * 86_400 * 1_000_000)

    def process(self, event: PipelineEvent) -> Outcome:
        if time.time_ns() // 1000 - event.raw["timestamp"] > self._max_age_micros:
            return Drop("too_old")
        return Ok(event)


def _build(name: str, config: DropOldEventsConfig, _resources: StageResources) -> DropOldEvents:
    return DropOldEvents(name, config)


register_stage("drop_old_events", DropOldEventsConfig, _build, "Drops events older than `max_age_days`.")
