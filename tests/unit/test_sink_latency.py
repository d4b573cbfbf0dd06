"""The sink agent's latency metrics: records per batch, capture → written weighted by records (one bucket
lookup per envelope, nothing decoded), freshness as the age of the newest capture time written; the
checkpoint's dead letters by stage and reason; the ``captured_at`` header."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import REGISTRY

from schemas.envelope import captured_header, header_captured
from schemas.serializer import encode_envelope
from sinks.agent import SinkAgent
from sinks.base import FlushResult, Health, SourceEnvelope, Unwritten
from sinks.telemetry import AgeGauge, RecordsHistogram
from streams.checkpoint import Checkpoint
from tests.support.records import processed


class Recorder:
    """A sink that writes everything but the envelopes named in ``leave_out`` (left Unwritten)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.buffer: list[SourceEnvelope] = []
        self.leave_out: set[int] = set()

    async def start(self) -> None: ...

    async def healthcheck(self) -> Health:
        return Health(True, "ok")

    def write(self, envelopes: Sequence[SourceEnvelope]) -> None:
        self.buffer.extend(envelopes)

    async def flush(self) -> FlushResult:
        done, self.buffer = self.buffer, []
        kept = [e for e in done if id(e) not in self.leave_out]
        return FlushResult(sum(e.count or 1 for e in kept),
                           unwritten=[Unwritten(e, "paused", "destination_paused") for e in done
                                      if id(e) in self.leave_out])

    async def close(self) -> None: ...


class Batch:
    def __init__(self) -> None:
        self.flushes: list[Callable[[], Awaitable[None]]] = []
        self.letters: list[str] = []

    def on_flush(self, flush: Callable[[], Awaitable[None]]) -> None:
        self.flushes.append(flush)

    async def dead_letter(self, value: bytes, key: bytes | None, *, reason: str, stage: str, error: str,
                          source_topic: str) -> None:
        self.letters.append(reason)


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def _envelope(records: int, captured_at: float, name: str) -> SourceEnvelope:
    rows = [processed(f"{name}-{i}", "buy", f"u{i}", 1_700_000_000_000_000 + i) for i in range(records)]
    return SourceEnvelope(encode_envelope("processed_envelope", rows), None, records, captured_at=captured_at)


def test_a_flush_observes_records_latency_and_freshness() -> None:
    sink = Recorder("latency_test")
    now = time.time()
    old, new, paused = _envelope(10, now - 20, "old"), _envelope(5, now - 2, "new"), _envelope(7, now - 1, "paused")
    sink.leave_out.add(id(paused))
    batch = Batch()

    async def run() -> None:
        agent = SinkAgent(sink, "events_processed")
        assert _value("headwater_sink_end_to_end_seconds_count", sink="latency_test") == 0  # shown from the start
        assert _value("headwater_sink_retries_total", sink="latency_test") == 0
        assert _value("headwater_sink_freshness_seconds", sink="latency_test") is None  # nothing written yet
        await agent.handle([old, new, paused], batch)
        for flush in batch.flushes:
            await flush()

    asyncio.run(run())
    assert batch.letters == ["destination_paused"]
    assert _value("headwater_sink_batch_records_sum", sink="latency_test") == 22
    assert _value("headwater_sink_end_to_end_seconds_count", sink="latency_test") == 15  # records, not envelopes
    assert _value("headwater_sink_end_to_end_seconds_bucket", sink="latency_test", le="10.0") == 5
    assert _value("headwater_sink_end_to_end_seconds_bucket", sink="latency_test", le="30.0") == 15
    total = _value("headwater_sink_end_to_end_seconds_sum", sink="latency_test")
    assert total is not None
    assert 10 * 20 + 5 * 2 <= total < 10 * 21 + 5 * 3
    freshness = _value("headwater_sink_freshness_seconds", sink="latency_test")
    assert freshness is not None
    assert 2 <= freshness < 4  # the newest written, not the paused one
    assert _value("headwater_sink_rows_written_total", sink="latency_test") == 15


def test_the_records_histogram_counts_weights_in_cumulative_buckets() -> None:
    histogram = RecordsHistogram("t_seconds", "doc", buckets=(1, 5))
    histogram.observe("s", 0.5, 3)
    histogram.observe("s", 5, 2)
    histogram.observe("s", 9)
    [family] = histogram.collect()
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("t_seconds_bucket", "1.0")] == 3
    assert samples[("t_seconds_bucket", "5.0")] == 5  # 5 is in the bucket le=5
    assert samples[("t_seconds_bucket", "+Inf")] == samples[("t_seconds_count", None)] == 6
    assert samples[("t_seconds_sum", None)] == 0.5 * 3 + 5 * 2 + 9


def test_freshness_is_computed_when_scraped_and_never_goes_back() -> None:
    clock = [100.0]
    gauge = AgeGauge("t_freshness_seconds", "doc", clock=lambda: clock[0])
    gauge.set("s", 90)
    gauge.set("s", 80)  # an older event written later: the newest stays
    clock[0] = 130
    [family] = gauge.collect()
    assert [s.value for s in family.samples] == [40]


def test_the_checkpoint_counts_dead_letters_by_stage_and_reason_once_committed() -> None:
    class Topic:
        async def send(self, **_: object) -> asyncio.Future[None]:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

    def count() -> float:
        return _value("headwater_stream_dead_letters_total", stage="sink:t", reason="sink_rejected") or 0.0

    before = count()

    async def run() -> None:
        checkpoint = Checkpoint([], Topic())  # type: ignore[arg-type]
        for _ in range(2):
            await checkpoint.dead_letter(b"x", None, reason="sink_rejected", stage="sink:t", error="e",
                                         source_topic="t")
        assert count() == before  # not before the commit
        await checkpoint.commit()

    asyncio.run(run())
    assert count() == before + 2


def test_the_captured_at_header() -> None:
    name, value = captured_header(1_700_000_000.123)
    assert header_captured({name: value}) == 1_700_000_000.123
    assert header_captured({name: b"soon"}) is None
    assert header_captured(None) is None
