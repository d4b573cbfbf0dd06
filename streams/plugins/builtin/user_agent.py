"""``user_agent``: browser, OS and device type from the raw user agent string."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import ua_parser
from pydantic import Field

from streams.plugins import Event, Plugin, PluginConfig, PluginContext

# ua-parser's names are kept except where PostHog's SDKs use another name for the same thing,
# so that insights do not split one browser into two values.
BROWSER_NAMES = {
    "Edge": "Microsoft Edge",
    "IE": "Internet Explorer",
    "Chrome Mobile iOS": "Chrome iOS",
}
MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Symbian OS", "Tizen"})
TABLET_DEVICES = ("iPad", "Tablet", "Kindle", "Nexus 7", "Nexus 9", "Nexus 10")

Described = tuple[tuple[str, Any], ...]


def _version(*parts: str | None) -> str | None:
    present = [p for p in parts if p]
    return ".".join(present) if present else None


def _device_type(result: ua_parser.Result) -> str:
    device = f"{result.device.family} {result.device.brand or ''}" if result.device else ""
    os = result.os.family if result.os else ""
    if any(name in device for name in TABLET_DEVICES):
        return "Tablet"
    if os == "Android" and "Mobile" not in result.string:
        return "Tablet"  # Android phones say "Mobile" in their user agent, tablets do not
    if os in MOBILE_OS or "Mobile" in result.string:
        return "Mobile"
    return "Desktop"


@lru_cache(maxsize=4096)
def describe(user_agent: str) -> Described:
    """The properties ``user_agent`` derives from one UA string; empty for bots and unknown strings.

    Cached, because the same few thousand strings make up most traffic.
    """
    result = ua_parser.parse(user_agent)
    if result.device is not None and result.device.family == "Spider":
        return ()
    found: dict[str, Any] = {}
    if result.user_agent is not None:
        found["$browser"] = BROWSER_NAMES.get(result.user_agent.family, result.user_agent.family)
        major, minor = result.user_agent.major, result.user_agent.minor
        if major and major.isdigit():
            found["$browser_version"] = float(f"{major}.{minor if minor and minor.isdigit() else 0}")
    if result.os is not None:
        found["$os"] = result.os.family
        os_version = _version(result.os.major, result.os.minor, result.os.patch)
        if os_version is not None:
            found["$os_version"] = os_version
    if found:
        found["$device_type"] = _device_type(result)
    return tuple(found.items())


class UserAgent(Plugin["UserAgent.Config"]):
    """Sets $browser, $browser_version, $os, $os_version and $device_type from the user agent.

    Names are ua-parser's (``Chrome Mobile``, ``Mobile Safari``, ``Mac OS X``) except where
    PostHog's SDKs say otherwise (``Microsoft Edge``, ``Internet Explorer``, ``Chrome iOS``).
    ``$browser_version`` is a number (major.minor), as posthog-js sends it. Bots (ua-parser's
    device family ``Spider``) are left untouched; the ``bot_filter`` plugin drops or tags them.
    """

    name = "user_agent"

    class Config(PluginConfig):
        source_property: str = Field("$raw_user_agent", min_length=1,
                                     description="The event property holding the user agent string.")
        overwrite: bool = Field(False, description="Replace properties the SDK already set (by default they are "
                                                   "kept and only missing ones are added).")

    async def process(self, event: Event, ctx: PluginContext[UserAgent.Config]) -> Event | None:
        user_agent = event.properties.get(self.config.source_property)
        if not isinstance(user_agent, str) or not user_agent:
            return event
        for key, value in describe(user_agent):
            if self.config.overwrite or key not in event.properties:
                event.properties[key] = value
        return event
