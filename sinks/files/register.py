"""Registers the ``files`` sink type: its config model and how it is built."""

from __future__ import annotations

from pathlib import Path

from headwater.runtime.settings import Endpoints
from sinks.files.config import FilesConfig
from sinks.files.sink import FilesSink
from sinks.files.store import LocalFileStore
from sinks.registry import register_sink


def build(name: str, config: FilesConfig, endpoints: Endpoints) -> FilesSink:
    return FilesSink(name, LocalFileStore(Path(config.directory)), config)


register_sink("files", FilesConfig, build,
              "JSON Lines (gzip) or Parquet files under a directory, by project, date and window; written atomically.")
