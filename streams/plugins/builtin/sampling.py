"""``sampling``: keep a deterministic fraction of events, by person or by event."""

from __future__ import annotations

import fnmatch
import hashlib
from typing import Literal

from pydantic import Field

from streams.plugins import Drop, Event, Plugin, PluginConfig, PluginContext

SAMPLED_OUT = Drop("sampled_out")


def bucket(key: str) -> float:
    """Where ``key`` falls in [0, 1): the first 8 bytes of its SHA-256. Stable across processes
    and versions, unlike ``hash()``, so every worker makes the same decision."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


class Sampling(Plugin["Sampling.Config"]):
    """Keeps a deterministic fraction of events, chosen by a hash of their distinct_id or uuid.

    By ``distinct_id`` (the default) a person's events are all kept or all dropped, so funnels and
    paths stay whole; by ``uuid`` each event is decided on its own. With ``events`` only those
    event names are sampled and all others kept. Events sampled out are dropped with the reason
    ``sampled_out`` (counted, not an ingestion warning: dropping them is the point).
    """

    name = "sampling"

    class Config(PluginConfig):
        rate: float = Field(gt=0, le=1, description="Fraction of events kept, above 0 and at most 1.")
        by: Literal["distinct_id", "uuid"] = Field("distinct_id", description="What the decision hashes: "
                                                   "`distinct_id` (whole persons) or `uuid` (single events).")
        events: list[str] | None = Field(None, min_length=1, description="Sample only these events (names or `*` "
                                         "globs); others are always kept. Default: all events.")

    async def process(self, event: Event, ctx: PluginContext[Sampling.Config]) -> Event | Drop:
        names = self.config.events
        if names is not None and not any(fnmatch.fnmatchcase(event.event, name) for name in names):
            return event
        key = event.distinct_id if self.config.by == "distinct_id" else event.uuid
        if bucket(key) < self.config.rate:
            return event
        return SAMPLED_OUT
