"""``resolve_project``: the event's token → its project (unknown → drop + count).

A batch stage: each distinct token of the batch is looked up once (the lookup caches, so a
batch usually costs no round trip at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headwater.runtime.projects import Project
from streams.event import PipelineEvent
from streams.stages.base import BaseStage, Drop, Ok, Outcome, ProjectLookup, StageResources
from streams.stages.registry import NoConfig, register_stage

UNKNOWN_TOKEN = Drop("unknown_token")


class ResolveProject(BaseStage):
    def __init__(self, name: str, projects: ProjectLookup) -> None:
        super().__init__(name)
        self._projects = projects

    async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
        found: dict[str, Project | None] = {}
        for token in {event.raw["token"] for event in events}:
            found[token] = await self._projects.resolve(token)  # Unavailable: the runner retries the batch
        outcomes: list[Outcome] = []
        for event in events:
            project = found[event.raw["token"]]
            if project is None:
                outcomes.append(UNKNOWN_TOKEN)
                continue
            event.team_id = project.id
            event.project = project
            outcomes.append(Ok(event))
        return outcomes


def _build(name: str, _config: Any, resources: StageResources) -> ResolveProject:
    return ResolveProject(name, resources.projects)


register_stage("resolve_project", NoConfig, _build, "The event's token → its project; unknown tokens are dropped.")
