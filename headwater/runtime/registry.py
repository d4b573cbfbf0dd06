"""One registry shape for every kind of component a topology names: ``(name, ConfigModel, factory)``.

Stages (``streams.stages.registry``) and sinks (``sinks.registry``) each keep a ``Registry``;
a component registers beside its code, a duplicate name fails at import with
``RegistrationError``, and an unknown name is ``UnknownComponent`` (at the YAML key ``type``)
listing what is known, with the closest as "did you mean". ``build`` validates the topology's
``config`` against the model first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from headwater.errors import RegistrationError, UnknownComponent
from headwater.runtime.suggest import did_you_mean

Resources = TypeVar("Resources")
Built = TypeVar("Built")


@dataclass(frozen=True)
class ComponentType(Generic[Resources, Built]):
    """A registered kind of component: its name, config model, factory and one-line summary."""

    name: str
    config: type[BaseModel]
    factory: Callable[[str, Any, Resources], Built]
    """Called with the component's name, its validated config (an instance of ``config``) and the resources."""
    summary: str

    def build(self, name: str, config: dict[str, Any], resources: Resources) -> Built:
        return self.factory(name, self.config.model_validate(config), resources)


class Registry(Generic[Resources, Built]):
    """The registered types of one kind of component (``kind`` names it in errors: "stage", "sink")."""

    def __init__(self, kind: str, reserved: Iterable[str] = ()) -> None:
        self.kind = kind
        self._reserved = frozenset(reserved)  # names the topology gives another meaning (``plugin``)
        self._types: dict[str, ComponentType[Resources, Built]] = {}

    def register(self, name: str, config: type[BaseModel], factory: Callable[[str, Any, Resources], Built],
                 summary: str) -> ComponentType[Resources, Built]:
        if name in self._types or name in self._reserved:
            raise RegistrationError(f"{self.kind} type {name!r} is registered twice")
        self._types[name] = ComponentType(name, config, factory, summary)
        return self._types[name]

    def types(self) -> dict[str, ComponentType[Resources, Built]]:
        return dict(self._types)

    def get(self, name: str) -> ComponentType[Resources, Built]:
        found = self._types.get(name)
        if found is None:
            names = [*sorted(self._types), *sorted(self._reserved)]
            raise UnknownComponent(f"unknown {self.kind} type {name!r}{did_you_mean(name, names)} "
                                   f"(known: {', '.join(names)})", "type")
        return found
