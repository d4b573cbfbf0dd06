"""Plugins: the extension point for people who write their own processing.

Import what you need from here: ``from streams.plugins import Event, Plugin, PluginContext``.
The author guide is docs/plugins.md; ``headwater plugin new NAME`` scaffolds a package.
"""

from streams.plugins.api import Event, NoSettings, Plugin, PluginContext, PluginMetrics
from streams.plugins.kv import KeyValueStore

__all__ = ["Event", "KeyValueStore", "NoSettings", "Plugin", "PluginContext", "PluginMetrics"]
