"""The sink registry: every sink type is ``(name, ConfigModel, factory)``, registered beside its code.

Built-in sinks register when the ``sinks`` package (imported before any of its modules) imports
``sinks.builtin``, which imports each by hand, in one place. The YAML
``type:``, the registry key, the package under ``sinks/`` and the ``sink`` metric label's
source are the same word. A duplicate name fails at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from headwater.runtime.registry import ComponentType, Registry
from headwater.runtime.settings import Endpoints
from sinks.base import Sink

SinkFactory = Callable[[str, Any, Endpoints], Sink]
"""Builds a sink from its name, its validated config (an instance of the type's model) and the endpoints.

Called once per sink when the worker starts; the sink opens its client lazily or here, and
closes it in ``close``.
"""

SinkType = ComponentType[Endpoints, Sink]

SINKS: Registry[Endpoints, Sink] = Registry("sink")


class SinkConfig(BaseModel):
    """Base of sink config models: strict (unknown keys are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def register_sink(name: str, config: type[BaseModel], factory: SinkFactory, summary: str) -> SinkType:
    """Register a sink type under its YAML ``type`` name."""
    return SINKS.register(name, config, factory, summary)


def sink_types() -> dict[str, SinkType]:
    """Every registered sink type (the built-ins registered when ``sinks`` was imported)."""
    return SINKS.types()


def resolve_sink(type_: str) -> SinkType:
    """The sink type a topology's sink names; ``UnknownComponent`` when nobody registered it."""
    return SINKS.get(type_)
