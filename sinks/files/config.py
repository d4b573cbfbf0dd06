"""The ``files`` sink's settings (``sinks[].config`` in topology.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sinks.filter import EventFilter
from sinks.registry import SinkConfig


class FilesConfig(SinkConfig):
    """Writes a topic's records (processed events, or window results) as files under a directory."""

    directory: str = Field(description="Where the files go (a local path; created if missing).")
    format: Literal["jsonl", "parquet"] = Field(
        "jsonl", description="`jsonl`: one JSON record per line, gzip-compressed unless `gzip: false`; "
                             "`parquet`: one Parquet file (zstd) per part (needs pyarrow: `pip install "
                             "'headwater[parquet]'`).")
    gzip: bool = Field(True, description="Compress JSON Lines files with gzip (`.jsonl.gz`).")
    window_seconds: int = Field(3600, ge=60, le=86_400, description=(
        "The event-time bucket of the `<window>` directory (`HHMM` of its start, UTC): an hour by default. "
        "Window results go in the bucket of their window's start."))
    dedupe_events: int = Field(20_000, ge=0, le=10_000_000, description=(
        "Event uuids remembered per source partition (also across restarts, read back from the newest files): "
        "an event the topic holds twice, as the pipeline's output does after a worker died before committing a "
        "batch, is written once. 0 writes whatever the topic holds."))
    filter: EventFilter = Field(default_factory=EventFilter, description="Which records to write (default: all).")
