"""An envelope's records as Avro bytes, and those bytes as an Avro object container file.

A sink that hands records to an engine that reads Avro itself (ClickHouse's ``FORMAT Avro``)
need not decode them in Python: an envelope is a record whose one field is an array of
records, and the array's records are laid out back to back after a block count. When that
count equals the envelope's ``count`` header and the array ends right after them, those bytes
are exactly the body of an object container file's data block. ``encoded_records`` finds
them (``None`` when the message is laid out any other way: then decode it), ``container``
writes the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from schemas import registry
from schemas.errors import UnknownSchemaError

MAGIC = b"Obj\x01"
_SYNC = os.urandom(16)


@dataclass(frozen=True)
class EncodedRecords:
    """``count`` records of the item schema of envelope schema ``schema_id``, Avro-encoded back to back."""

    schema_id: int
    subject: str
    count: int
    data: memoryview


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos`` → (value, the position after it)."""
    shift = result = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _long(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _bytes(value: bytes) -> bytes:
    return _long(len(value)) + value


@cache
def item_schema(schema_id: int) -> str | None:
    """The JSON of the record schema an envelope's array holds, or None if it is not a one-field envelope."""
    fields = registry.by_id(schema_id).raw()["fields"]
    if len(fields) != 1 or not isinstance(fields[0]["type"], dict) or fields[0]["type"].get("type") != "array":
        return None
    return json.dumps(fields[0]["type"]["items"], separators=(",", ":"))


def encoded_records(message: bytes, count: int | None) -> EncodedRecords | None:
    """The records of a Confluent-framed envelope as bytes, if its array is one block of ``count`` records."""
    if count is None or count <= 0 or len(message) < 7 or message[0] != 0 or message[-1] != 0:
        return None
    schema_id = int.from_bytes(message[1:5], "big")
    try:
        if item_schema(schema_id) is None:
            return None
        subject = registry.by_id(schema_id).subject
        block, start = _read_long(message, 5)
    except (UnknownSchemaError, ValueError):
        return None
    if block != count:
        return None
    return EncodedRecords(schema_id, subject, count, memoryview(message)[start:-1])


def container(parts: Sequence[EncodedRecords]) -> bytes:
    """An uncompressed object container file holding ``parts`` (all of one schema id), a block each."""
    return b"".join(container_chunks(parts))


def container_chunks(parts: Sequence[EncodedRecords]) -> list[bytes | memoryview]:
    """``container`` in pieces, the records' bytes not copied: for a writer that sends them as they are."""
    if not parts:
        raise ValueError("no records")
    schema_id = parts[0].schema_id
    schema = item_schema(schema_id)
    if schema is None or any(p.schema_id != schema_id for p in parts):
        raise ValueError("one container holds records of one envelope schema")
    out: list[bytes | memoryview] = [MAGIC, _long(2), _bytes(b"avro.schema"), _bytes(schema.encode()),
                                     _bytes(b"avro.codec"), _bytes(b"null"), _long(0), _SYNC]
    for part in parts:
        out += [_long(part.count), _long(len(part.data)), part.data, _SYNC]
    return out
