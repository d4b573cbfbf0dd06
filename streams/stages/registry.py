"""The stage registry: every stage type is ``(name, ConfigModel, factory)``, registered beside its code.

Built-in stages register when ``streams.stages`` (the package, imported before any of its
modules) imports them by hand, in one place. ``type: plugin`` stages are resolved through
``streams.plugins.registry``, and ``streams.components`` chooses between the two. A duplicate
name fails at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from headwater.runtime.registry import ComponentType, Registry
from streams.stages.base import Stage, StageResources

StageFactory = Callable[[str, Any, StageResources], Stage]
"""Builds a stage from its name, its validated config (an instance of the type's model) and the resources."""

StageType = ComponentType[StageResources, Stage]

STAGES: Registry[StageResources, Stage] = Registry("stage", reserved=["plugin"])


class NoConfig(BaseModel):
    """For stages without settings: any key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def register_stage(name: str, config: type[BaseModel], factory: StageFactory, summary: str) -> StageType:
    """Register a built-in stage type under its YAML ``type`` name."""
    return STAGES.register(name, config, factory, summary)


def stage_types() -> dict[str, StageType]:
    """Every registered stage type (the built-ins registered when ``streams.stages`` was imported)."""
    return STAGES.types()


def builtin_stage(type_: str) -> StageType:
    """The built-in stage type ``type_``; ``UnknownComponent`` when there is none."""
    return STAGES.get(type_)
