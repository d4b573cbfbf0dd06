"""``resolve_project``: the event's token → its project (REFERENCE §4: unknown → drop + count)."""

from __future__ import annotations

from typing import Any

from headwater.projects import ProjectLookupError
from streams.event import PipelineEvent
from streams.stages.base import Drop, Ok, Outcome, ProjectLookup, Retry, StageDeps
from streams.stages.registry import NoConfig, register_stage


class ResolveProject:
    def __init__(self, name: str, projects: ProjectLookup) -> None:
        self.name = name
        self._projects = projects

    async def process(self, event: PipelineEvent) -> Outcome:
        try:
            project = await self._projects.resolve(event.raw["token"])
        except ProjectLookupError as exc:
            return Retry(str(exc))
        if project is None:
            return Drop("unknown_token")
        event.team_id = project.id
        event.project = project
        return Ok(event)

    async def close(self) -> None:
        return None


def _build(name: str, _config: Any, deps: StageDeps) -> ResolveProject:
    if deps.projects is None:
        raise ValueError("resolve_project needs the project resolver")
    return ResolveProject(name, deps.projects)


register_stage("resolve_project", NoConfig, _build, "The event's token → its project; unknown tokens are dropped.")
