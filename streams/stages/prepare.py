"""``prepare``: the last stage; shapes the event as a row of ClickHouse's ``events`` table."""

from __future__ import annotations

from typing import Any

from streams.event import PipelineEvent, to_processed
from streams.stages.base import Ok, Outcome, StageDeps
from streams.stages.registry import NoConfig, register_stage


class Prepare:
    def __init__(self, name: str) -> None:
        self.name = name

    async def process(self, event: PipelineEvent) -> Outcome:
        event.output = to_processed(event)
        return Ok(event)

    async def close(self) -> None:
        return None


def _build(name: str, _config: Any, _deps: StageDeps) -> Prepare:
    return Prepare(name)


register_stage("prepare", NoConfig, _build, "Shapes the event as an `events` row; must be the last stage.")
