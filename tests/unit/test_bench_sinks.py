"""The bench's sinks part without a stack: its envelopes are the worker's, its batches are cut as the worker
cuts them, and the files sink and its plain loop both read back to exactly the records sent (no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import uvloop

from bench.worker import sink_throughput as part
from headwater.runtime.settings import Endpoints
from schemas.serializer import decode_envelope

NO_SERVICES = Endpoints(kafka="", postgres="", redis="", clickhouse="")


def test_envelopes_hold_the_records_in_order_per_partition_and_batches_close_at_max_events() -> None:
    records = part.processed_records(5_000)
    messages = part.processed_messages(records, 4)
    decoded = [r for m in messages for r in decode_envelope(m.value)[1]]
    assert sorted(r["uuid"] for r in decoded) == sorted(r["uuid"] for r in records)
    assert all(m.count == len(decode_envelope(m.value)[1]) for m in messages)
    for partition in range(4):
        offsets = [m.position.offset for m in messages if m.position.partition == partition]
        assert offsets == list(range(len(offsets)))
    batches = part.sink_batches(messages, 2_000)
    assert [m for b in batches for m in b] == messages
    assert all(sum(m.count for m in b) >= 2_000 for b in batches[:-1])
    assert all(sum(m.count for m in b[:-1]) < 2_000 for b in batches)


@pytest.mark.parametrize("format_", ["jsonl", "parquet"])
@pytest.mark.parametrize("side", ["sink", "loop"])
def test_both_sides_write_every_record_once(tmp_path: Path, format_: str, side: str) -> None:
    records = part.processed_records(3_000)
    batches = part.sink_batches(part.processed_messages(records, 4), 1_000)
    destination = part.FilesDestination(tmp_path / "out", format_)
    if side == "sink":
        assert uvloop.run(part.drive_sink(destination, batches, NO_SERVICES, lambda: None)) == 0
    else:
        destination.loop([[m.value for m in b] for b in batches])
    found = destination.read_back()
    assert sorted(found) == sorted(r["uuid"] for r in records)


def test_a_run_that_lost_a_record_is_seen(tmp_path: Path) -> None:
    records = part.processed_records(1_000)
    batches = part.sink_batches(part.processed_messages(records, 4), 500)
    destination = part.FilesDestination(tmp_path / "out", "jsonl")
    destination.loop([[m.value for m in b] for b in batches[:-1]])
    assert len(destination.read_back()) < len(records)


def test_the_clickhouse_row_names_every_column_and_keeps_microseconds() -> None:
    record = part.processed_records(1)[0]
    row = part.json_row(record)
    assert row["timestamp"] == f"{record['timestamp'] // 1_000_000}.{record['timestamp'] % 1_000_000:06d}"
    assert {f"$group_{i}" for i in range(5)} <= set(row)
    assert not {f"group_{i}" for i in range(5)} & set(row)


def test_rounds_alternate_which_side_goes_first() -> None:
    order = list(part.interleaved(["a"], 2))
    assert order == [(0, "a", "sink"), (0, "a", "loop"), (1, "a", "loop"), (1, "a", "sink")]
