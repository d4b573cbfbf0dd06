"""The Avro serializer's wire format, and compatibility between schema versions."""

from __future__ import annotations

import io
import itertools
import json
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import processed_writer, raw_writer, registry
from schemas.errors import DecodeError, SchemaError, UnknownSchemaError
from schemas.layout import envelope_header
from schemas.processed_writer import encode_processed_envelope
from schemas.raw_writer import encode_raw_envelope
from schemas.serializer import AvroSerializer

RAW_EVENT = {
    "uuid": "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", "event": "$pageview", "distinct_id": "u1", "token": "phc_x",
    "timestamp": 1_700_000_000_123_456, "now": 1_700_000_000_200_000, "sent_at": None, "ip": "127.0.0.1",
    "properties": '{"$current_url": "https://example.com"}', "set": None, "set_once": '{"a": 1}',
    "historical_migration": False, "capture_warnings": [], "skip_person_processing": True,
}


def test_round_trip_in_confluent_wire_format() -> None:
    serializer: AvroSerializer[dict[str, Any]] = AvroSerializer("raw_envelope")
    data = serializer.encode({"events": [RAW_EVENT, RAW_EVENT]})
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == registry.latest("raw_envelope").id
    assert serializer.decode(data) == {"events": [RAW_EVENT, RAW_EVENT]}


def test_messages_written_with_an_older_version_still_decode() -> None:
    from schemas.registry import versions

    v1 = versions()["raw_envelope"][0]
    old_event = {k: v for k, v in RAW_EVENT.items() if k != "skip_person_processing"}
    buf = io.BytesIO()
    buf.write(b"\x00" + v1.id.to_bytes(4, "big"))
    schemaless_writer(buf, v1.parsed(), {"events": [old_event]})
    serializer: AvroSerializer[dict[str, Any]] = AvroSerializer("raw_envelope")
    assert serializer.decode(buf.getvalue()) == {"events": [{**old_event, "skip_person_processing": False}]}


def test_garbage_is_a_decode_error() -> None:
    serializer: AvroSerializer[dict[str, Any]] = AvroSerializer("raw_envelope")
    with pytest.raises(DecodeError):
        serializer.decode(b"\x01\x00\x00\x00\x01abc")
    with pytest.raises(DecodeError):
        serializer.decode(b"\x00")
    with pytest.raises(UnknownSchemaError):
        serializer.decode(b"\x00\x00\x00\x03\xe7\x00")


def test_registry_ids_are_unique_and_files_parse() -> None:
    ids = [v.id for versions in registry.versions().values() for v in versions]
    assert len(ids) == len(set(ids))
    for versions in registry.versions().values():
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        for version in versions:
            version.parsed()


# ---- compatibility: a new version must read the old one's data, and the old one the new data ----

def _sample(schema: Any) -> Any:
    """A value of every field of ``schema`` (a parsed-JSON Avro schema), with non-default content."""
    if isinstance(schema, str):
        return {"string": "s", "long": 7, "int": 3, "boolean": True, "double": 1.5, "float": 0.5,
                "bytes": b"b", "null": None}[schema]
    if isinstance(schema, list):
        non_null = [s for s in schema if s != "null"]
        return _sample(non_null[0]) if non_null else None
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: _sample(f["type"]) for f in schema["fields"]}
    if kind == "array":
        return [_sample(schema["items"])]
    if kind == "map":
        return {"k": _sample(schema["values"])}
    if kind == "enum":
        return schema["symbols"][0]
    return _sample(kind)


def incompatibilities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Ways in which ``new`` breaks readers or writers of ``old`` (full compatibility)."""
    problems = []
    for writer, reader, direction in ((old, new, "new reads old"), (new, old, "old reads new")):
        buf = io.BytesIO()
        schemaless_writer(buf, parse_schema(writer), _sample(writer))
        buf.seek(0)
        try:
            schemaless_reader(buf, parse_schema(writer), parse_schema(reader))
        except Exception as exc:  # fastavro raises SchemaResolutionError and friends
            problems.append(f"{direction}: {exc}")
    return problems


@pytest.mark.parametrize("subject", sorted(registry.versions()))
def test_each_version_is_fully_compatible_with_the_previous(subject: str) -> None:
    versions = registry.versions()[subject]
    for old, new in itertools.pairwise(versions):
        assert incompatibilities(old.raw(), new.raw()) == [], f"{new.file} breaks {old.file}"


def test_the_compatibility_check_catches_a_breaking_change() -> None:
    old = registry.latest("raw_envelope").raw()
    broken = json.loads(json.dumps(old))
    event_fields = broken["fields"][0]["type"]["items"]["fields"]
    event_fields.append({"name": "tenant", "type": "string"})  # a new field without a default
    assert incompatibilities(old, broken)
    added_with_default = json.loads(json.dumps(old))
    added_with_default["fields"][0]["type"]["items"]["fields"].append(
        {"name": "tenant", "type": "string", "default": ""})
    assert incompatibilities(old, added_with_default) == []


_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80)
_LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_RAW_EVENTS = st.lists(st.fixed_dictionaries({
    "uuid": _TEXT, "event": _TEXT, "distinct_id": _TEXT, "token": st.sampled_from(["phc_a", "phc_é" * 20]),
    "timestamp": _LONG, "now": st.sampled_from([0, 1_732_230_000_000_000, -1]),
    "sent_at": st.none() | _LONG, "ip": st.none() | st.sampled_from(["127.0.0.1", "::1"]),
    "properties": st.text(max_size=300), "set": st.none() | _TEXT, "set_once": st.none() | _TEXT,
    "historical_migration": st.booleans(), "capture_warnings": st.lists(_TEXT, max_size=3),
    "skip_person_processing": st.booleans(),
}), max_size=6)


@settings(max_examples=300, deadline=None)
@given(_RAW_EVENTS)
def test_the_raw_envelope_writer_writes_what_fastavro_writes(events: list[Any]) -> None:
    """The gateway's hand-written writer and fastavro agree byte for byte, and it reads back."""
    serializer: AvroSerializer[dict[str, list[Any]]] = AvroSerializer("raw_envelope")
    written = encode_raw_envelope(events)
    assert written == serializer.encode({"events": events})
    assert serializer.decode(written)["events"] == events


_PROCESSED_EVENTS = st.lists(st.fixed_dictionaries({
    "uuid": _TEXT, "event": st.sampled_from(["$pageview", "é" * 30, ""]), "properties": st.text(max_size=300),
    "timestamp": _LONG, "team_id": _LONG, "distinct_id": _TEXT, "elements_chain": _TEXT, "created_at": _LONG,
    "person_id": _TEXT, "person_properties": st.sampled_from(["{}", '{"a": 1}']),
    "person_created_at": st.none() | _LONG, "person_mode": st.sampled_from(["full", "propertyless"]),
    "group_0": _TEXT, "group_1": st.just(""), "group_2": _TEXT, "group_3": st.just(""), "group_4": _TEXT,
    "historical_migration": st.booleans(),
}), max_size=6)


@settings(max_examples=300, deadline=None)
@given(_PROCESSED_EVENTS)
def test_the_processed_envelope_writer_writes_what_fastavro_writes(events: list[Any]) -> None:
    """The worker's hand-written writer and fastavro agree byte for byte, and it reads back."""
    serializer: AvroSerializer[dict[str, list[Any]]] = AvroSerializer("processed_envelope")
    written = encode_processed_envelope(events)
    assert written == serializer.encode({"events": events})
    assert serializer.decode(written)["events"] == events


@pytest.mark.parametrize(("subject", "fields"), [("raw_envelope", raw_writer.FIELDS),
                                                 ("processed_envelope", processed_writer.FIELDS)])
def test_a_hand_written_writer_refuses_a_schema_it_does_not_know(subject: str,
                                                                 fields: tuple[tuple[str, str], ...]) -> None:
    """A new version with another layout stops the writer at import, not in production."""
    with pytest.raises(SchemaError, match="update the writer"):
        envelope_header(subject, (*fields, ("added", "string")), "the test")
    envelope_header(subject, fields, "the test")
