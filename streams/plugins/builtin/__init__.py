"""Built-in plugins, listed by hand; docs/plugins-builtin.md describes them."""

from __future__ import annotations

from typing import Any

from streams.plugins.api import Plugin
from streams.plugins.builtin.bot_filter import BotFilter
from streams.plugins.builtin.event_rules import EventRules
from streams.plugins.builtin.geoip import GeoIP
from streams.plugins.builtin.property_filter import PropertyFilter
from streams.plugins.builtin.sampling import Sampling
from streams.plugins.builtin.user_agent import UserAgent

BUILTIN: list[type[Plugin[Any]]] = [UserAgent, GeoIP, PropertyFilter, EventRules, BotFilter, Sampling]
