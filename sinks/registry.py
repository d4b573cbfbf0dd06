"""The sink registry: every sink type is ``(name, ConfigModel, factory)``, registered beside its code.

Built-in sinks register when the ``sinks`` package (imported before any of its modules) imports
``sinks.builtin``, which imports each by hand, in one place. The YAML
``type:``, the registry key, the package under ``sinks/`` and the ``sink`` metric label's
source are the same word. A duplicate name fails at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from headwater.errors import RegistrationError, UnknownComponent
from headwater.runtime.settings import Endpoints
from sinks.base import Sink

SinkFactory = Callable[[str, Any, Endpoints], Sink]
"""Builds a sink from its name, its validated config (an instance of the type's model) and the endpoints.

Called once per sink when the worker starts; the sink opens its client lazily or here, and
closes it in ``close``.
"""


class SinkConfig(BaseModel):
    """Base of sink config models: strict (unknown keys are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class SinkType:
    name: str
    config: type[BaseModel]
    factory: SinkFactory
    summary: str

    def build(self, name: str, config: dict[str, Any], endpoints: Endpoints) -> Sink:
        return self.factory(name, self.config.model_validate(config), endpoints)


_REGISTRY: dict[str, SinkType] = {}


def register_sink(name: str, config: type[BaseModel], factory: SinkFactory, summary: str) -> SinkType:
    """Register a sink type under its YAML ``type`` name."""
    if name in _REGISTRY:
        raise RegistrationError(f"sink type {name!r} is registered twice")
    _REGISTRY[name] = SinkType(name, config, factory, summary)
    return _REGISTRY[name]


def sink_types() -> dict[str, SinkType]:
    """Every registered sink type (the built-ins registered when ``sinks`` was imported)."""
    return dict(_REGISTRY)


def resolve_sink(type_: str) -> SinkType:
    """The sink type a topology's sink names; ``UnknownComponent`` when nobody registered it."""
    known = sink_types()
    if type_ not in known:
        raise UnknownComponent(f"unknown sink type {type_!r} (known: {', '.join(sorted(known))})", "type")
    return known[type_]
