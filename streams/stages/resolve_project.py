"""``resolve_project``: the event's token → its project (REFERENCE §4: unknown → drop + count)."""

from __future__ import annotations

from headwater.projects import ProjectLookupError, ProjectResolver
from streams.event import PipelineEvent
from streams.stages.base import Drop, Ok, Outcome, Retry


class ResolveProject:
    def __init__(self, name: str, projects: ProjectResolver) -> None:
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
        return Ok(event)
