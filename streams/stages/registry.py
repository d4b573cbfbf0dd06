"""The stage registry: every stage type is ``(name, ConfigModel, factory)``, registered beside its code.

Built-in stages register when ``streams.stages`` imports them (by hand, in one place);
``type: plugin`` stages are resolved through ``streams.plugins.registry``. A duplicate name
fails at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from streams.errors import StreamsError
from streams.stages.base import Stage, StageDeps

StageFactory = Callable[[str, Any, StageDeps], Stage]
"""Builds a stage from its name, its validated config (an instance of the type's model) and the deps."""


class NoConfig(BaseModel):
    """For stages without settings: any key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StageType:
    name: str
    config: type[BaseModel]
    factory: StageFactory
    summary: str

    def build(self, name: str, config: dict[str, Any], deps: StageDeps) -> Stage:
        return self.factory(name, self.config.model_validate(config), deps)


class RegistrationError(StreamsError):
    """Two stage types claimed the same name."""


class UnknownStage(StreamsError):
    """A topology names a stage type or plugin nobody registered; ``field`` is the YAML key at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


_REGISTRY: dict[str, StageType] = {}


def register_stage(name: str, config: type[BaseModel], factory: StageFactory, summary: str) -> StageType:
    """Register a built-in stage type under its YAML ``type`` name."""
    if name in _REGISTRY or name == "plugin":
        raise RegistrationError(f"stage type {name!r} is registered twice")
    _REGISTRY[name] = StageType(name, config, factory, summary)
    return _REGISTRY[name]


def stage_types() -> dict[str, StageType]:
    import streams.stages  # noqa: F401 - registers the built-ins

    return dict(_REGISTRY)


def resolve_stage(type_: str, plugin: str | None) -> StageType:
    """The stage type a topology's stage names (a built-in, or a plugin)."""
    if type_ == "plugin":
        if not plugin:
            raise UnknownStage("a plugin stage needs `plugin: <name or package.module:Class>`", "plugin")
        from streams.plugins.registry import plugin_stage_type

        return plugin_stage_type(plugin)
    if plugin is not None:
        raise UnknownStage(f"`plugin` goes with `type: plugin`, not with type {type_!r}", "plugin")
    known = stage_types()
    if type_ not in known:
        raise UnknownStage(f"unknown stage type {type_!r} (known: {', '.join(sorted(known))}, plugin)", "type")
    return known[type_]
