"""Records → Kafka messages: the key and the value of each, in the sink's format.

Keys (``key: identity``, the default) are stable, so that publishing a record again (redelivery
after a crash) publishes the same key and value, and a compacted topic or a consumer that
deduplicates by key keeps one copy:

- an event (a record with a ``uuid``): its uuid;
- a window result (``window``, ``key``, ``start``): ``<window>:<key values joined by |>:<start>``,
  the key the window's own output topic gives it;
- any other record: the SHA-256 of its JSON, in hex (the same record, the same key).

Values: ``json``, the record as one JSON object (its fields as they travel: ``properties``
stays JSON text, times stay microseconds); ``avro``, an envelope of the one record in the
source envelope's own schema and the Confluent wire format (``schemas.serializer``), which
``schemas.serializer.decode_envelope`` or any Avro reader given the schema of that id reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from schemas.envelope import count_header
from schemas.serializer import encode_envelope
from sinks.base import Record
from sinks.kafka.client import Headers
from sinks.kafka.config import KafkaConfig

ONE_RECORD: Headers = [count_header(1)]
"""The headers of an Avro message: an envelope of one record, as every envelope topic carries."""


@dataclass(frozen=True)
class Encoder:
    """How one sink turns a record of its source topic into a messages key, value and headers."""

    config: KafkaConfig

    def key(self, record: Record) -> bytes | None:
        if self.config.key == "none":
            return None
        if self.config.key == "distinct_id":
            distinct_id = record.get("distinct_id")
            return None if distinct_id is None else str(distinct_id).encode()
        return identity(record)

    def value(self, subject: str, record: Record) -> tuple[bytes, Headers | None]:
        """The message's value and headers."""
        if self.config.format == "avro":
            return encode_envelope(subject, [dict(record)]), ONE_RECORD
        return orjson.dumps(record if isinstance(record, dict) else dict(record)), None


def identity(record: Record) -> bytes:
    """The stable key of a record; see the module docstring."""
    uuid = record.get("uuid")
    if isinstance(uuid, str) and uuid:
        return uuid.encode()
    if {"window", "key", "start"} <= record.keys():
        return f"{record['window']}:{_key_values(record['key'])}:{record['start']}".encode()
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest().encode()


def _key_values(key: object) -> str:
    """A window result's key (a JSON object of text values, in the window's key order) as ``a|b``."""
    try:
        fields = orjson.loads(key) if isinstance(key, str | bytes) else None
    except orjson.JSONDecodeError:
        fields = None
    if not isinstance(fields, dict):
        return str(key)
    return "|".join(str(v) for v in fields.values())
