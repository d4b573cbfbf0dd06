"""Schema ids and versions from ``avro/registry.json``: a registry in the repo, no service.

Each subject (one per envelope kind) has numbered versions; each version has a global id that
the Confluent wire format puts in front of every message. Writers use a subject's newest
version; readers resolve any known id to the newest version (Avro schema resolution).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema

from schemas.errors import UnknownSchemaError

AVRO_DIR = Path(__file__).with_name("avro")


@dataclass(frozen=True)
class SchemaVersion:
    subject: str
    version: int
    id: int
    file: str

    def raw(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((AVRO_DIR / self.file).read_text())
        return loaded

    def parsed(self) -> Any:
        return _parsed(self.file)


@cache
def _parsed(file: str) -> Any:
    return parse_schema(json.loads((AVRO_DIR / file).read_text()))


@cache
def versions() -> dict[str, list[SchemaVersion]]:
    """Every subject's versions, oldest first."""
    doc = json.loads((AVRO_DIR / "registry.json").read_text())
    return {
        subject: sorted((SchemaVersion(subject, **entry) for entry in entries), key=lambda v: v.version)
        for subject, entries in doc["subjects"].items()
    }


def latest(subject: str) -> SchemaVersion:
    try:
        return versions()[subject][-1]
    except KeyError:
        raise UnknownSchemaError(f"no Avro subject {subject!r} in {AVRO_DIR / 'registry.json'}") from None


def by_id(schema_id: int) -> SchemaVersion:
    for entries in versions().values():
        for entry in entries:
            if entry.id == schema_id:
                return entry
    raise UnknownSchemaError(f"schema id {schema_id} is not in {AVRO_DIR / 'registry.json'}")
