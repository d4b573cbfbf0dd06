"""Built-in plugins, listed by hand."""

from __future__ import annotations

from typing import Any

from streams.plugins.api import Plugin

BUILTIN: list[type[Plugin[Any]]] = []
