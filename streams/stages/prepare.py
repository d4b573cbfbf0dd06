"""``prepare``: the last stage; shapes the event as a row of ClickHouse's ``events`` table."""

from __future__ import annotations

from streams.event import PipelineEvent, to_processed
from streams.stages.base import EventStage, Ok, Outcome
from streams.stages.registry import NoConfig, register_stage


class Prepare(EventStage):
    def process(self, event: PipelineEvent) -> Outcome:
        event.processed = to_processed(event)
        return Ok(event)

register_stage(
    "prepare", NoConfig, lambda name, _config, _resources: Prepare(name),
    "Shapes the event as an `events` row; must be the last stage.",
)
