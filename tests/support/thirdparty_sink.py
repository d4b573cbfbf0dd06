"""A sink type as another package would ship it, for the ``headwater.sinks`` entry point tests."""

from __future__ import annotations

from collections.abc import Sequence

from headwater.runtime.settings import Endpoints
from sinks.base import FlushResult, Health, SourceEnvelope
from sinks.registry import SinkConfig, register_sink


class CountingConfig(SinkConfig):
    label: str = "counted"


class CountingSink:
    """Counts the records it is given; writes nowhere."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: list[SourceEnvelope] = []

    async def start(self) -> None:
        return None

    async def healthcheck(self) -> Health:
        return Health(True, "always")

    def write(self, envelopes: Sequence[SourceEnvelope]) -> None:
        self.pending.extend(envelopes)

    async def flush(self) -> FlushResult:
        written = sum(len(e.records()) for e in self.pending)
        self.pending = []
        return FlushResult(written=written)

    async def close(self) -> None:
        return None


def build(name: str, config: CountingConfig, endpoints: Endpoints) -> CountingSink:
    return CountingSink(name)


COUNTING = register_sink("counting", CountingConfig, build, "Counts records (a test's third-party sink).")
NOT_A_SINK_TYPE = "a string, not what register_sink returned"
