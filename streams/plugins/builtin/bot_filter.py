"""``bot_filter``: drop (or tag) events sent by bots, crawlers, monitors and HTTP libraries."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from streams.plugins import Drop, Event, Plugin, PluginConfig, PluginContext

# Case-insensitive regular expressions; most are plain substrings. "bot" must end a word so
# that names like "Abbott" pass, and the phone brand Cubot is not a bot.
BOT_PATTERNS = (
    r"(?<!cu)bot\b", "crawl", "spider", "slurp", "archiver", "headless", "lighthouse", "pingdom", "uptime",
    "statuscake", "site24x7", "newrelicpinger", "prerender", "phantomjs", "selenium", "puppeteer", "playwright",
    "cypress", "facebookexternalhit", "bingpreview", "mediapartners-google", "feedfetcher", "google-read-aloud",
    "chatgpt-user", "perplexity", r"curl/", r"wget/", "python-requests", "python-urllib", "python-httpx",
    "aiohttp", "go-http-client", r"java/", "apache-httpclient", "libwww-perl", "scrapy", r"node-fetch",
)

BOT = Drop("bot")


def _any_of(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


class BotFilter(Plugin["BotFilter.Config"]):
    """Drops events whose user agent looks like a bot, crawler, uptime monitor or HTTP library.

    The user agent is the first of ``user_agent_properties`` the event has as a string; events
    without one pass. ``allow_patterns`` win over the built-in list and ``extra_patterns``.
    Bots' events are dropped with the reason ``bot`` (counted, not an ingestion warning); with
    ``action: tag`` they are kept, marked ``$is_bot: true`` and counted as ``bot_tagged``.
    """

    name = "bot_filter"

    class Config(PluginConfig):
        action: Literal["drop", "tag"] = Field("drop", description="`drop` bots' events, or `tag` them with "
                                                                   "`$is_bot: true`.")
        user_agent_properties: list[str] = Field(["$raw_user_agent", "$useragent"], min_length=1,
                                                 description="Where the user agent is, in order of preference.")
        extra_patterns: list[str] = Field(default_factory=list, description="More bot patterns (case-insensitive "
                                                                            "regular expressions).")
        allow_patterns: list[str] = Field(default_factory=list, description="User agents matching any of these "
                                                                            "(regular expressions) are never bots.")

        @field_validator("extra_patterns", "allow_patterns")
        @classmethod
        def _compiles(cls, patterns: list[str]) -> list[str]:
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
            return patterns

    def __init__(self, config: BotFilter.Config, ctx: PluginContext[BotFilter.Config]) -> None:
        super().__init__(config, ctx)
        self._bots = _any_of((*BOT_PATTERNS, *config.extra_patterns))
        self._allowed = _any_of(tuple(config.allow_patterns)) if config.allow_patterns else None

    def is_bot(self, user_agent: str) -> bool:
        if self._allowed is not None and self._allowed.search(user_agent):
            return False
        return self._bots.search(user_agent) is not None

    async def process(self, event: Event, ctx: PluginContext[BotFilter.Config]) -> Event | Drop:
        user_agent = next((value for key in self.config.user_agent_properties
                           if isinstance(value := event.properties.get(key), str)), None)
        if user_agent is None or not self.is_bot(user_agent):
            return event
        if self.config.action == "tag":
            event.properties["$is_bot"] = True
            ctx.metrics.count("bot_tagged")
            return event
        return BOT
