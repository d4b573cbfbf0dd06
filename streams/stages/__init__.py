"""Built-in stages, registered by their YAML ``type``."""

from __future__ import annotations

from collections.abc import Callable

from streams.stages.base import Stage, StageDeps
from streams.stages.prepare import Prepare
from streams.stages.resolve_project import ResolveProject
from streams.topology import StageSpec

StageFactory = Callable[[StageSpec, StageDeps], Stage]

BUILT_INS: dict[str, StageFactory] = {
    "resolve_project": lambda spec, deps: ResolveProject(spec.name, deps.projects),
    "prepare": lambda spec, _deps: Prepare(spec.name),
}


def build_stage(spec: StageSpec, deps: StageDeps) -> Stage:
    """The stage ``spec`` declares, wired to its dependencies."""
    return BUILT_INS[spec.type](spec, deps)
