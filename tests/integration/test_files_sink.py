"""The files sink end to end: the real posthog SDK → gateway → worker → Parquet and JSON Lines files, with the
worker SIGKILLed while it writes them, again and again; what is left reads back to exactly the events sent."""

from __future__ import annotations

import gzip
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from posthog import Posthog

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from schemas.serializer import decode_envelope
from tests.support.kafka import lag, messages
from tests.support.processes import Process, StartGateway, StartWorker
from tests.support.topology import Pipeline, fresh_prefix, isolated_pipeline, isolated_topology
from tests.support.waiting import wait_until

FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl.gz"}
KILLS = (("temporary", 1), ("files", 3), ("temporary", 1), ("files", 7))
"""When the worker dies: as soon as a hidden temporary file shows (a write in progress), or once that many new
files appeared (between two writes, or in one: the other sink's, or the next partition's)."""
EVENTS_PER_ROUND = 300


def _with_files_sinks(root: Path) -> dict[str, Any]:
    doc = isolated_topology(fresh_prefix("f"))
    for format_ in FORMATS:  # small batches: many flushes, many files, many moments to die in
        doc["sinks"].append({"name": f"export_{format_}", "type": "files", "source": doc["pipeline"]["output"],
                             "batch": {"max_events": 60, "max_seconds": 0.2},
                             "config": {"directory": str(root / format_), "format": format_}})
    return doc


def _names(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _hidden(root: Path) -> list[Path]:
    return sorted(p for p in _names(root) if p.name.startswith("."))


def _uuids(path: Path) -> list[str]:
    """Every record's uuid in one file; a partial or unreadable file raises."""
    if path.name.endswith(".parquet"):
        return [str(u) for u in pq.read_table(path).column("uuid").to_pylist()]
    assert path.name.endswith(".jsonl.gz"), f"a file the sink does not write: {path}"
    return [orjson.loads(line)["uuid"] for line in gzip.decompress(path.read_bytes()).splitlines()]


def _written(root: Path) -> Counter[str]:
    """How often each uuid is in the visible files under ``root``."""
    return Counter(u for path in sorted(_names(root)) if not path.name.startswith(".") for u in _uuids(path))


def _kill_while_writing(worker: Process, root: Path, trigger: str, new_files: int) -> str:
    """SIGKILL ``worker`` at the moment ``KILLS`` describes; what was seen then."""
    before = _names(root)

    def moment() -> str:
        now = _names(root)
        if trigger == "temporary" and any(p.name.startswith(".") and p.name.endswith(".tmp") for p in now):
            return "a temporary file"
        fresh = {p for p in now - before if not p.name.startswith(".")}
        return f"{len(fresh)} new files" if len(fresh) >= new_files else ""

    seen = wait_until(moment, 90, f"the worker wrote no {new_files} new files", interval=0.005, logs=[worker],
                      ignore=(FileNotFoundError,))
    worker.stop(signal.SIGKILL)
    return seen


def _wait_all_written(directory: Path, sent: set[str], worker: Process, kills: list[str]) -> None:
    def missing() -> set[str]:
        return sent - set(_written(directory))

    wait_until(lambda: not missing(), 120,
               lambda: f"{directory.name}: {len(missing())} of {len(sent)} events missing (kills at: {kills})",
               interval=0.5, logs=[worker], ignore=(FileNotFoundError,))


async def test_a_worker_killed_mid_write_leaves_no_partial_file_and_every_event_once(
        stack: Endpoints, project: Project, start_gateway: StartGateway, start_worker: StartWorker,
        tmp_path: Path) -> None:
    root = tmp_path / "export"
    pipeline: Pipeline = isolated_pipeline(stack.kafka, tmp_path / "topology.yaml", _with_files_sinks(root))
    gateway = start_gateway(pipeline)
    client = Posthog(project.api_token, host=gateway.url, flush_at=50, max_retries=0)
    sent: set[str] = set()

    def send(n: int) -> None:
        for i in range(n):
            event_uuid = str(uuid.uuid4())
            client.capture("purchase" if i % 3 else "$pageview", distinct_id=f"user-{i % 17}", uuid=event_uuid,
                           properties={"price": float(i % 7), "i": i})
            sent.add(event_uuid)
        client.flush()

    worker = start_worker(pipeline)
    kills: list[str] = []
    try:
        for trigger, new_files in KILLS:
            send(EVENTS_PER_ROUND)  # while the worker starts, or restarts and takes up the batch it died in
            kills.append(_kill_while_writing(worker, root, trigger, new_files))
            assert worker.exit_code() == -signal.SIGKILL
            worker = start_worker(pipeline)
        send(EVENTS_PER_ROUND)
    finally:
        client.shutdown()

    for format_ in FORMATS:
        _wait_all_written(root / format_, sent, worker, kills)
    # The sinks flush before they commit: once their group committed everything, no file will change.
    sources = pipeline.worker_reads()
    wait_until(lambda: lag(stack.kafka, pipeline.group, sources) == 0, 60,
               f"the worker did not commit everything of {sorted(sources)}", interval=0.5, logs=[worker])

    output = pipeline.topology.pipeline.output
    in_topic = Counter(r["uuid"] for m in messages(stack.kafka, output, pipeline.partitions(output), timeout=60)
                       for r in decode_envelope(m.value() or b"")[1])
    for format_, suffix in FORMATS.items():
        directory = root / format_
        assert not _hidden(directory), f"{format_}: left behind by a killed write: {_hidden(directory)}"
        files = sorted(_names(directory))
        assert files
        assert all(p.name.endswith(suffix) for p in files), files
        written = _written(directory)  # every file reads back (pyarrow, gzip + JSON), or this raises
        # every event of the source topic, each once, though the topic holds some twice (the pipeline
        # processed again the batch a kill interrupted): the sink remembers what it wrote (dedupe_events)
        assert set(written) == set(in_topic), f"{format_}: the files do not hold the processed topic's events"
        twice = {u: n for u, n in written.items() if n > 1}
        assert not twice, (f"{format_}: {len(twice)} events in more than one record (kills at: {kills}; the topic "
                           f"holds {sum(1 for n in in_topic.values() if n > 1)} twice)")
        assert set(written) == sent, f"{format_}: {len(set(written) - sent)} unexpected events"
        assert sum(written.values()) == len(sent)
