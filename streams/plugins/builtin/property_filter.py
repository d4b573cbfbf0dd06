"""``property_filter``: drop, keep or hash event properties by name, e.g. to keep PII out."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from typing import Any

import orjson
from pydantic import Field, SecretStr, model_validator

from streams.plugins import Event, Plugin, PluginConfig, PluginContext


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    """One regex matching any of the ``*``/``?`` globs (case-sensitive, like property names)."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)) if patterns else None


def salted_sha256(salt: str, value: Any) -> str:
    """``sha256(salt + value)`` as hex; non-strings as compact JSON with sorted keys.

    Plain SHA-256 of the concatenation (not HMAC) so the same digest can be computed in SQL:
    ``lower(hex(SHA256(concat(salt, value))))`` in ClickHouse.
    """
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return hashlib.sha256((salt + text).encode()).hexdigest()


class PropertyFilter(Plugin["PropertyFilter.Config"]):
    """Drops, keeps only, or hashes (salted SHA-256) event properties by name or glob.

    ``drop`` runs first, then ``keep``, then ``hash``. The same rules apply to the person
    properties the event sets (``event.set``/``event.set_once``: its ``$set``/``$set_once``,
    which are not in ``properties`` while a plugin runs). ``None`` values are not hashed.
    """

    name = "property_filter"

    class Config(PluginConfig):
        drop: list[str] = Field(default_factory=list, description="Properties to remove (names or `*` globs).")
        keep: list[str] | None = Field(None, description="If set, only these properties survive (names or globs).")
        keep_posthog_properties: bool = Field(True, description="With `keep`: also keep every `$`-prefixed "
                                                                "property (PostHog's own).")
        hash: list[str] = Field(default_factory=list, description="Properties whose values are replaced by "
                                                                  "`sha256(salt + value)` in hex (names or globs).")
        salt: SecretStr | None = Field(None, description="Salt for `hash` and `hash_distinct_id`; required with "
                                                         "them. Keep it secret: it is what makes the digests safe.")
        hash_distinct_id: bool = Field(False, description="Also replace the distinct id by its salted hash.")

        @model_validator(mode="after")
        def _salt_with_hash(self) -> PropertyFilter.Config:
            if (self.hash or self.hash_distinct_id) and not (self.salt and self.salt.get_secret_value()):
                raise ValueError("`salt` is required when `hash` or `hash_distinct_id` is set")
            return self

    def __init__(self, config: PropertyFilter.Config, ctx: PluginContext[PropertyFilter.Config]) -> None:
        super().__init__(config, ctx)
        self._drop = _compile(config.drop)
        self._keep = _compile(config.keep) if config.keep is not None else None
        self._hash = _compile(config.hash)
        self._salt = config.salt.get_secret_value() if config.salt else ""

    def _kept(self, key: str) -> bool:
        if self._drop is not None and self._drop.match(key):
            return False
        if self.config.keep is None:
            return True
        if self.config.keep_posthog_properties and key.startswith("$"):
            return True
        return self._keep is not None and self._keep.match(key) is not None

    def _filter(self, properties: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in properties.items():
            if self._kept(key):
                hashed = value is not None and self._hash is not None and self._hash.match(key)
                out[key] = salted_sha256(self._salt, value) if hashed else value
        return out

    async def process(self, event: Event, ctx: PluginContext[PropertyFilter.Config]) -> Event | None:
        event.properties = self._filter(event.properties)
        event.set = self._filter(event.set)
        event.set_once = self._filter(event.set_once)
        if self.config.hash_distinct_id:
            event.distinct_id = salted_sha256(self._salt, event.distinct_id)
        return event
