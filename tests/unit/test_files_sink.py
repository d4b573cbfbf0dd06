"""The files sink's layout, formats and filter, and the export filter's conditions."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from schemas.serializer import encode_envelope
from sinks.base import SourceEnvelope, SourcePosition
from sinks.files.config import FilesConfig
from sinks.files.sink import FilesSink
from sinks.files.store import LocalFileStore
from sinks.filter import EventFilter, PropertyCondition
from tests.support.records import processed

AT = 1_733_059_800 * 1_000_000  # 2024-12-01 13:30:00 UTC


def sink(root: Path, **config: object) -> FilesSink:
    return FilesSink("export", LocalFileStore(root), FilesConfig(directory=str(root), **config))


def flush(target: FilesSink, records: list[dict[str, object]], partition: int = 2, offset: int = 7) -> int:
    target.write([SourceEnvelope(encode_envelope("processed_envelope", records), None, len(records),
                                 SourcePosition("events_processed", partition, offset))])
    return asyncio.run(target.flush()).written


def test_files_are_laid_out_by_project_date_and_window_and_read_back_exactly(tmp_path: Path) -> None:
    records = [processed("a", "buy", "u1", AT, 3.5, team_id=1), processed("b", "view", "u2", AT + 1, team_id=2),
               processed("c", "buy", "u1", AT + 3_600_000_000, team_id=1)]
    assert flush(sink(tmp_path), records) == 3
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["1/2024-12-01/1300/events_processed-p2-o000000000007.jsonl.gz",
                     "1/2024-12-01/1400/events_processed-p2-o000000000007.jsonl.gz",
                     "2/2024-12-01/1300/events_processed-p2-o000000000007.jsonl.gz"]
    first = gzip.decompress((tmp_path / files[0]).read_bytes()).splitlines()
    assert [orjson.loads(line) for line in first] == [records[0]]


def test_parquet_reads_back_to_the_records(tmp_path: Path) -> None:
    records = [processed(f"e{i}", "buy", f"u{i}", AT + i, float(i)) for i in range(50)]
    flush(sink(tmp_path, format="parquet", window_seconds=86_400), records)
    (path,) = tmp_path.rglob("*.parquet")
    assert pq.read_table(path).to_pylist() == records


def test_a_write_killed_half_way_leaves_no_file_a_reader_would_take(tmp_path: Path) -> None:
    leftover = tmp_path / "1" / "2024-12-01" / "1300" / ".events_processed-p2-o000000000007.jsonl.gz.1a2b3c4d.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"\x1f\x8b half a gzip")  # what a SIGKILL during a write leaves
    flush(sink(tmp_path), [processed("a", "buy", "u1", AT)])
    assert not leftover.exists()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["events_processed-p2-o000000000007.jsonl.gz"]


def test_the_filter_takes_events_by_name_and_property_conditions(tmp_path: Path) -> None:
    only = EventFilter(events=["purchase"], properties=[PropertyCondition(key="price", op="gte", value=10)])
    records = [processed("a", "purchase", "u", AT, 25.0), processed("b", "purchase", "u", AT, 5.0),
               processed("c", "pageview", "u", AT, 99.0), processed("d", "purchase", "u", AT)]
    assert flush(sink(tmp_path, gzip=False, filter=only), records) == 1
    (path,) = tmp_path.rglob("*.jsonl")
    assert [orjson.loads(line)["uuid"] for line in path.read_bytes().splitlines()] == ["a"]


@pytest.mark.parametrize(("condition", "takes"), [
    (PropertyCondition(key="plan", op="eq", value="pro"), True),
    (PropertyCondition(key="plan", op="neq", value="pro"), False),
    (PropertyCondition(key="plan", op="exists"), True),
    (PropertyCondition(key="coupon", op="not_exists"), True),
    (PropertyCondition(key="url", op="contains", value="/checkout"), True),
    (PropertyCondition(key="price", op="lt", value=3), False),
    (PropertyCondition(key="price", op="lte", value=3), True),
    (PropertyCondition(key="plan", op="gt", value=1), False),  # a string never compares by size
    (PropertyCondition(key="flag", op="eq", value=1), False),  # true is not 1
])
def test_property_conditions(condition: PropertyCondition, takes: bool) -> None:
    record = processed("a", "buy", "u", AT, 3, plan="pro", url="https://x.test/checkout?a=1", flag=True)
    assert EventFilter(properties=[condition]).takes(record) is takes


def _held(root: Path, format_: str) -> list[str]:
    if format_ == "parquet":
        return [u for p in sorted(root.rglob("*.parquet")) for u in pq.read_table(p).column("uuid").to_pylist()]
    return [orjson.loads(line)["uuid"] for p in sorted(root.rglob("*.jsonl.gz"))
            for line in gzip.decompress(p.read_bytes()).splitlines()]


@pytest.mark.parametrize("format_", ["jsonl", "parquet"])
def test_an_event_the_topic_holds_twice_after_a_worker_died_is_written_once(tmp_path: Path, format_: str) -> None:
    """The pipeline re-emits a batch it had not committed: the same events again, later on the same partition."""
    batch = [processed(f"e{i}", "buy", f"u{i}", AT + i) for i in range(30)]
    assert flush(sink(tmp_path, format=format_), batch[:20], offset=7) == 20  # committed, then the worker died
    again = sink(tmp_path, format=format_)  # the restarted worker reads the files' uuids back
    assert flush(again, batch[10:], offset=8) == 10  # the re-emitted 10..19 and the new 20..29
    assert flush(again, [batch[25], processed("new", "buy", "u", AT)], offset=9) == 1
    assert sorted(_held(tmp_path, format_)) == sorted([f"e{i}" for i in range(30)] + ["new"])


def test_dedupe_remembers_at_most_dedupe_events_per_partition(tmp_path: Path) -> None:
    target = sink(tmp_path, dedupe_events=5)
    batch = [processed(f"e{i}", "buy", "u", AT + i) for i in range(10)]
    flush(target, batch, offset=1)
    assert flush(target, batch[:5], offset=2) == 5  # forgotten: beyond the horizon
    assert flush(target, batch[:5], offset=3) == 0  # remembered now
    assert flush(target, batch[:5], partition=3, offset=1) == 5  # another partition remembers its own


def test_dedupe_events_zero_writes_what_the_topic_holds(tmp_path: Path) -> None:
    target = sink(tmp_path, dedupe_events=0)
    batch = [processed("a", "buy", "u", AT)]
    flush(target, batch, offset=1)
    assert flush(target, batch, offset=2) == 1
    assert _held(tmp_path, "jsonl") == ["a", "a"]
