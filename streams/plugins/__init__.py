"""The plugin API, version 1: everything a plugin author imports, and nothing else.

    from streams.plugins import Drop, Event, Plugin, PluginConfig, PluginContext, PluginError
    from streams.plugins import AgentContext, Event          # an agent

``__all__`` is the stable surface (docs/plugins.md, "API v1: what is stable"); the test harness
is ``streams.plugins.testing``. Modules under ``streams.plugins`` (``api``, ``stage``,
``registry``, ``kv``) are how the worker runs plugins and may change; import from here.
``API_VERSION`` changes only when a name here is removed or changes meaning (CHANGELOG.md,
"Plugin API"); additions keep it.
"""

from streams.errors import PluginError
from streams.plugins.api import (
    AgentContext,
    AgentHandler,
    Event,
    NoSettings,
    Plugin,
    PluginConfig,
    PluginContext,
    PluginMetrics,
)
from streams.plugins.kv import KeyValueStore
from streams.stages.base import Drop

API_VERSION = "1"

__all__ = [
    "API_VERSION",
    "AgentContext",
    "AgentHandler",
    "Drop",
    "Event",
    "KeyValueStore",
    "NoSettings",
    "Plugin",
    "PluginConfig",
    "PluginContext",
    "PluginError",
    "PluginMetrics",
]
