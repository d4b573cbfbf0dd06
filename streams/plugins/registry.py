"""Finding plugins: built-in names, the ``headwater.plugins`` entry point group, or an import path.

A topology stage ``{type: plugin, plugin: X}`` resolves X in that order: a built-in plugin
name, a name another package registered under the entry point group ``headwater.plugins``
(``[project.entry-points."headwater.plugins"] my_plugin = "my_pkg.plugin:MyPlugin"``), or an
import path ``package.module:Class``.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from headwater.errors import RegistrationError, UnknownComponent
from headwater.runtime.suggest import did_you_mean
from streams.plugins.api import Plugin
from streams.plugins.stage import PluginStage
from streams.stages.base import StageResources
from streams.stages.registry import StageType

ENTRY_POINT_GROUP = "headwater.plugins"


def builtin_plugins() -> dict[str, type[Plugin[Any]]]:
    from streams.plugins.builtin import BUILTIN

    found: dict[str, type[Plugin[Any]]] = {}
    for plugin in BUILTIN:
        if not plugin.name or plugin.name in found:
            raise RegistrationError(f"built-in plugin name {plugin.name!r} is empty or used twice")
        found[plugin.name] = plugin
    return found


@cache
def _entry_point_plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load(obj: Any, ref: str) -> type[Plugin[Any]]:
    if not (isinstance(obj, type) and issubclass(obj, Plugin)):
        raise UnknownComponent(f"{ref!r} is not a Plugin subclass (from streams.plugins import Plugin)", "plugin")
    return obj


def resolve_plugin(ref: str) -> type[Plugin[Any]]:
    builtins = builtin_plugins()
    if ref in builtins:
        clash = _entry_point_plugins().get(ref)
        if clash is not None:  # a package's plugin that a built-in would silently shadow
            raise UnknownComponent(
                f"plugin {ref!r} is both built in and registered by an installed package ({clash.value}): "
                "rename the package's entry point (and its `plugin:` in the topology)", "plugin")
        return builtins[ref]
    found = _entry_point_plugins().get(ref)
    if found is not None:
        return _load(found.load(), ref)
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownComponent(f"cannot import plugin module {module_name!r}: {exc}", "plugin") from exc
        if not hasattr(module, attr):
            raise UnknownComponent(f"module {module_name!r} has no {attr!r}", "plugin")
        return _load(getattr(module, attr), ref)
    names = sorted([*builtins, *_entry_point_plugins()])
    known = ", ".join(names) or "none installed"
    raise UnknownComponent(f"unknown plugin {ref!r}{did_you_mean(ref, names)} "
                           f"(known: {known}; or give an import path package.module:Class)", "plugin")


def available_plugins() -> dict[str, tuple[str, str]]:
    """name → (where it comes from, its one-line summary)."""
    found: dict[str, tuple[str, str]] = {}
    for name, plugin in builtin_plugins().items():
        found[name] = ("built-in", _summary(plugin))
    for name, entry in _entry_point_plugins().items():
        if name in found:
            found[name] = (f"built-in; CLASH with entry point {entry.value}", found[name][1])
            continue
        try:
            summary = _summary(_load(entry.load(), name))
        except Exception as exc:  # noqa: BLE001 - a broken package must not hide the others
            summary = f"cannot load: {type(exc).__name__}: {exc}"
        found[name] = (f"entry point {entry.value}", summary)
    return found


def _summary(plugin: type[Plugin[Any]]) -> str:
    lines = (plugin.__doc__ or "").strip().splitlines()
    return lines[0] if lines else ""


def plugin_stage_type(ref: str) -> StageType:
    plugin_cls = resolve_plugin(ref)

    def build(name: str, config: BaseModel, resources: StageResources) -> PluginStage:
        return PluginStage(name, plugin_cls, config, resources.kv(name))

    return StageType(f"plugin:{ref}", plugin_cls.Config, build, _summary(plugin_cls) or ref)
