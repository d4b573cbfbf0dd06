"""``resolve_project``: the event's token → its project (REFERENCE §4: unknown → drop + count)."""

from __future__ import annotations

from typing import Any

from streams.event import PipelineEvent
from streams.stages.base import BaseStage, Drop, Ok, Outcome, ProjectLookup, StageResources
from streams.stages.registry import NoConfig, register_stage


class ResolveProject(BaseStage):
    def __init__(self, name: str, projects: ProjectLookup) -> None:
        super().__init__(name)
        self._projects = projects

    async def process(self, event: PipelineEvent) -> Outcome:
        project = await self._projects.resolve(event.raw["token"])  # Unavailable: the runner retries
        if project is None:
            return Drop("unknown_token")
        event.team_id = project.id
        event.project = project
        return Ok(event)


def _build(name: str, _config: Any, resources: StageResources) -> ResolveProject:
    return ResolveProject(name, resources.projects)


register_stage("resolve_project", NoConfig, _build, "The event's token → its project; unknown tokens are dropped.")
