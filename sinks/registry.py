"""The sink registry: every sink type is ``(name, ConfigModel, factory)``, registered beside its code.

Built-in sinks register when the ``sinks`` package (imported before any of its modules) imports
``sinks.builtin``, which imports each by hand, in one place. The YAML
``type:``, the registry key, the package under ``sinks/`` and the ``sink`` metric label's
source are the same word. A duplicate name fails at import.

Other packages add sink types through the entry point group ``headwater.sinks``: the entry
point's name is the type's name and its value the ``SinkType`` that ``register_sink`` returned::

    [project.entry-points."headwater.sinks"]
    s3 = "my_sinks.s3:S3_SINK"          # S3_SINK = register_sink("s3", S3Config, build, "…")

They are loaded the first time the registry is read; one that fails to load, or names another
type than its own, is a ``RegistrationError`` saying which package it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from headwater.errors import RegistrationError, UnknownComponent
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

ENTRY_POINT_GROUP = "headwater.sinks"


class SinkConfig(BaseModel):
    """Base of sink config models: strict (unknown keys are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def published_topics(self) -> list[str]:
        """Topics of the pipeline's own Kafka this sink publishes to (none, unless it exports to Kafka).

        The worker's checks (``streams.components``) want each declared under ``topics:``, so that
        ``headwater migrate`` creates it, and ``topology graph`` draws an edge to it."""
        return []


def register_sink(name: str, config: type[BaseModel], factory: SinkFactory, summary: str) -> SinkType:
    """Register a sink type under its YAML ``type`` name."""
    return SINKS.register(name, config, factory, summary)


@cache
def _load_entry_points() -> None:
    """Import every ``headwater.sinks`` entry point once; each registers its type as it loads."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {point.name!r} = {point.value!r} ({ENTRY_POINT_GROUP})"
        try:
            loaded = point.load()
        except RegistrationError as exc:
            raise RegistrationError(f"{origin}: {exc}") from exc
        except Exception as exc:  # a broken package must say which one it is
            raise RegistrationError(f"{origin} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        if not isinstance(loaded, ComponentType) or loaded.name != point.name \
                or SINKS.types().get(point.name) is not loaded:
            raise RegistrationError(f"{origin} must be the SinkType that register_sink({point.name!r}, …) returned")


def published_topics(type_: str, config: dict[str, Any]) -> list[str]:
    """The topics a sink of ``type_`` with ``config`` publishes to on the pipeline's Kafka
    (``SinkConfig.published_topics``); none when the type is unknown or the config invalid
    (both are reported elsewhere)."""
    try:
        validated = resolve_sink(type_).config.model_validate(config)
    except (UnknownComponent, ValidationError):
        return []
    return list(validated.published_topics()) if isinstance(validated, SinkConfig) else []


def sink_types() -> dict[str, SinkType]:
    """Every registered sink type: the built-ins, and those of the ``headwater.sinks`` entry points."""
    _load_entry_points()
    return SINKS.types()


def resolve_sink(type_: str) -> SinkType:
    """The sink type a topology's sink names; ``UnknownComponent`` when nobody registered it."""
    _load_entry_points()
    return SINKS.get(type_)
