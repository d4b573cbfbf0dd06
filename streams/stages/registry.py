"""The stage registry: every stage type is ``(name, ConfigModel, factory)``, registered beside its code.

Built-in stages register when ``streams.stages`` (the package, imported before any of its
modules) imports them by hand, in one place;
``type: plugin`` stages are resolved through ``streams.plugins.registry``, and
``streams.components`` chooses between the two. A duplicate name fails at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from headwater.errors import RegistrationError, UnknownComponent
from streams.stages.base import Stage, StageResources

StageFactory = Callable[[str, Any, StageResources], Stage]
"""Builds a stage from its name, its validated config (an instance of the type's model) and the resources."""


class NoConfig(BaseModel):
    """For stages without settings: any key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StageType:
    name: str
    config: type[BaseModel]
    factory: StageFactory
    summary: str

    def build(self, name: str, config: dict[str, Any], resources: StageResources) -> Stage:
        return self.factory(name, self.config.model_validate(config), resources)


_REGISTRY: dict[str, StageType] = {}


def register_stage(name: str, config: type[BaseModel], factory: StageFactory, summary: str) -> StageType:
    """Register a built-in stage type under its YAML ``type`` name."""
    if name in _REGISTRY or name == "plugin":
        raise RegistrationError(f"stage type {name!r} is registered twice")
    _REGISTRY[name] = StageType(name, config, factory, summary)
    return _REGISTRY[name]


def stage_types() -> dict[str, StageType]:
    """Every registered stage type (the built-ins registered when ``streams.stages`` was imported)."""
    return dict(_REGISTRY)


def builtin_stage(type_: str) -> StageType:
    """The built-in stage type ``type_``; ``UnknownComponent`` when there is none."""
    known = stage_types()
    if type_ not in known:
        raise UnknownComponent(f"unknown stage type {type_!r} (known: {', '.join(sorted(known))}, plugin)", "type")
    return known[type_]
