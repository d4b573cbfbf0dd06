"""The sink contract (``sinks/base.py``), checked the same way for every sink that runs without a service.

Each case builds a sink on a real destination (a temporary directory; a webhook receiver on
127.0.0.1), and reads back what it holds. The ClickHouse sink passes the same checks in
``tests/integration``, on the stack's ClickHouse. What every sink must do:

- **idempotent redelivery**: the same envelopes flushed twice leave each record once;
- **a transient error is retried inside flush**: flush returns once the data is durable;
- **a permanent error stops the flush** (the worker then stops, nothing committed), or, for a
  destination that refuses records rather than failing (a webhook's 422), **only the refused
  record is dead-lettered**;
- **only the bad part is dead-lettered**: an undecodable envelope comes back alone, the rest is written;
- **flush means durable**: what flush returned as written can be read back right away.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.serializer import encode_envelope
from sinks.base import Sink, SourceEnvelope, SourcePosition
from sinks.errors import PermanentSinkError, RetriableSinkError
from sinks.files.config import FilesConfig
from sinks.files.sink import FilesSink
from sinks.files.store import LocalFileStore
from sinks.webhook.config import WebhookConfig
from sinks.webhook.sink import WebhookSink
from tests.support.receiver import Receiver
from tests.support.records import processed

HOUR = 3_600_000_000
BASE = 1_700_000_000 * 1_000_000


class FlakyStore(LocalFileStore):
    """A local directory whose next ``put`` calls fail as told."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failures: list[Exception] = []

    def put(self, path: str, data: bytes) -> None:
        if self.failures:
            raise self.failures.pop(0)
        super().put(path, data)


@dataclass
class Destination:
    sink: Sink
    read_back: Callable[[], list[str]]  # the uuids it holds, with repeats
    fail_next: Callable[[Exception], None]
    restart: Callable[[], Sink]  # a new sink on the same destination: the worker started again
    refuse: Callable[[str], None] | None = None  # it refuses records (this uuid) instead of failing for good
    close: Callable[[], None] = lambda: None


def files_destination(tmp_path: Path, format_: str) -> Destination:
    store = FlakyStore(tmp_path / "out")
    config = FilesConfig(directory=str(store.root), format=format_)

    def read_back() -> list[str]:
        uuids: list[str] = []
        for path in sorted(store.root.rglob("*")):
            if path.name.endswith(".jsonl.gz"):
                uuids += [orjson.loads(line)["uuid"] for line in gzip.decompress(path.read_bytes()).splitlines()]
            elif path.name.endswith(".parquet"):
                import pyarrow.parquet as pq

                uuids += pq.read_table(path).column("uuid").to_pylist()
        return uuids

    return Destination(FilesSink("files", store, config), read_back, store.failures.append,
                       lambda: FilesSink("files", store, config))


def webhook_destination(_: Path) -> Destination:
    """A receiver that keeps one record per uuid, as the webhook docs tell receivers to do: delivery
    is at least once, and a redelivered batch may be cut elsewhere than the first time."""
    receiver = Receiver(b"compliance")
    receiver.up()
    config = WebhookConfig(url=receiver.url, secret_env="UNUSED")

    def fail_next(exc: Exception) -> None:
        receiver.fail_next(503 if isinstance(exc, RetriableSinkError) else 401)

    def read_back() -> list[str]:
        assert receiver.bad_signatures == 0
        return sorted(set(receiver.uuids()))

    return Destination(WebhookSink("webhook", config, receiver.secret), read_back, fail_next,
                       lambda: WebhookSink("webhook", config, receiver.secret),
                       refuse=receiver.refuse_uuids.add, close=receiver.down)


DESTINATIONS: dict[str, Callable[[Path], Destination]] = {
    "files-jsonl": lambda tmp: files_destination(tmp, "jsonl"),
    "files-parquet": lambda tmp: files_destination(tmp, "parquet"),
    "webhook": webhook_destination,
}


@pytest.fixture(params=sorted(DESTINATIONS))
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Destination]:
    made = DESTINATIONS[request.param](tmp_path)
    yield made
    made.close()


def envelopes(count: int = 3, per: int = 5, partition: int = 0) -> list[SourceEnvelope]:
    out = []
    for n in range(count):
        # each envelope in an hour of its own: a batch's records go to several files
        records = [processed(f"e{partition}-{n}-{i}", "buy", f"u{i}", BASE + n * HOUR + i) for i in range(per)]
        out.append(SourceEnvelope(encode_envelope("processed_envelope", records), None, per,
                                  SourcePosition("events_processed", partition, 100 + n)))
    return out


def flush(sink: Sink, batch: list[SourceEnvelope]) -> Any:
    sink.write(batch)
    return asyncio.run(sink.flush())


def test_redelivered_envelopes_leave_each_record_once(destination: Destination) -> None:
    batch = envelopes()
    assert flush(destination.sink, batch).written == 15
    # the worker died before the commit: read again (a sink that knows it wrote them writes nothing new)
    assert flush(destination.sink, batch).written in {0, 15}
    held = destination.read_back()
    assert len(held) == 15
    assert set(held) == {f"e0-{n}-{i}" for n in range(3) for i in range(5)}


def test_a_shorter_redelivery_after_a_crash_still_leaves_each_record_once(destination: Destination) -> None:
    batch = envelopes(count=4)
    flush(destination.sink, batch)  # flushed, not committed; after the restart the batches end elsewhere
    again = destination.restart()
    flush(again, batch[:2])
    flush(again, batch[2:])
    assert sorted(destination.read_back()) == sorted(f"e0-{n}-{i}" for n in range(4) for i in range(5))


def test_a_transient_error_is_retried_inside_flush(destination: Destination,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinks.retry.BACKOFF_START", 0.001)
    destination.fail_next(RetriableSinkError("disk full"))
    destination.fail_next(RetriableSinkError("disk full"))
    assert flush(destination.sink, envelopes()).written == 15
    assert len(destination.read_back()) == 15


def test_a_permanent_error_stops_the_flush_or_only_the_refused_record_comes_back(destination: Destination) -> None:
    if destination.refuse is None:
        destination.fail_next(PermanentSinkError("permission denied"))
        with pytest.raises(PermanentSinkError, match="permission denied"):
            flush(destination.sink, envelopes())
        return
    destination.refuse("e0-1-2")
    result = flush(destination.sink, envelopes())
    assert [r.record["uuid"] for r in result.rejected] == ["e0-1-2"]
    assert result.written == 14
    assert "e0-1-2" not in destination.read_back()
    assert len(destination.read_back()) == 14


def test_start_and_healthcheck(destination: Destination) -> None:
    async def run() -> bool:
        await destination.sink.start()
        return (await destination.sink.healthcheck()).ok

    assert asyncio.run(run())


def test_only_an_undecodable_envelope_comes_back_the_rest_is_written(destination: Destination) -> None:
    batch = envelopes()
    garbage = SourceEnvelope(b"\x00not avro", None, 1, SourcePosition("events_processed", 0, 103))
    result = flush(destination.sink, [*batch, garbage])
    assert [u.envelope for u in result.unwritten] == [garbage]
    assert result.written == 15
    assert len(destination.read_back()) == 15
