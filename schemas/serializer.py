"""Avro in the Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the body.

Compatible with Confluent's deserializers given the same ids; the ids come from the registry
file in the repo, so no registry service is needed.
"""

from __future__ import annotations

import io
import struct
from functools import cache
from typing import Any, Generic, TypeVar

from fastavro import schemaless_reader, schemaless_writer

from schemas import registry
from schemas.errors import DecodeError

T = TypeVar("T")
_HEADER = struct.Struct(">bI")
MAGIC = 0


class AvroSerializer(Generic[T]):
    """Encodes records with a subject's newest schema; decodes any registered version."""

    def __init__(self, subject: str) -> None:
        self._latest = registry.latest(subject)
        self._schema = self._latest.parsed()
        self._header = _HEADER.pack(MAGIC, self._latest.id)

    @property
    def schema_id(self) -> int:
        return self._latest.id

    def encode(self, record: T) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        schemaless_writer(buf, self._schema, record)
        return buf.getvalue()

    def decode(self, data: bytes) -> T:
        if len(data) < _HEADER.size:
            raise DecodeError(f"message of {len(data)} bytes is too short for the Confluent wire format")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"message starts with byte {magic}, not the Confluent magic byte 0")
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            if schema_id == self._latest.id:
                record: Any = schemaless_reader(body, self._schema, None)
            else:
                writer = registry.by_id(schema_id).parsed()
                record = schemaless_reader(body, writer, self._schema)
        except (EOFError, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise DecodeError(f"corrupt Avro body (schema id {schema_id}): {exc}") from exc
        result: T = record
        return result


@cache
def _serializer(subject: str) -> AvroSerializer[dict[str, Any]]:
    return AvroSerializer(subject)


@cache
def _records_field(subject: str) -> str:
    fields = registry.latest(subject).raw()["fields"]
    arrays = [f["name"] for f in fields if isinstance(f["type"], dict) and f["type"].get("type") == "array"]
    if len(arrays) != 1:
        raise DecodeError(f"subject {subject!r} is not an envelope (one array of records)")
    return str(arrays[0])


def decode_envelope(data: bytes) -> tuple[str, list[dict[str, Any]]]:
    """Any registered envelope (its subject is found from the schema id) → its subject and records.

    An envelope is a record with one array field (``events``, ``warnings``, ...): what every
    topic between the stages and the sinks carries.
    """
    if len(data) < _HEADER.size:
        raise DecodeError(f"message of {len(data)} bytes is too short for the Confluent wire format")
    subject = registry.by_id(_HEADER.unpack_from(data)[1]).subject
    records: list[dict[str, Any]] = _serializer(subject).decode(data)[_records_field(subject)]
    return subject, records


def encode_envelope(subject: str, records: list[dict[str, Any]]) -> bytes:
    """``records`` as an envelope of ``subject``, with its newest schema: the inverse of ``decode_envelope``."""
    return _serializer(subject).encode({_records_field(subject): records})
