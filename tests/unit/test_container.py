"""Envelopes' record bytes found without decoding, and written as Avro object container files."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from schemas.container import container, encoded_records
from schemas.serializer import encode_envelope


def _warnings(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"team_id": 1, "type": "t", "source": "s", "event_uuid": f"u{i}", "details": "{}", "timestamp": i}
            for i in range(start, start + n)]


def test_the_records_of_envelopes_make_a_container_any_avro_reader_reads() -> None:
    first, second = _warnings(3), _warnings(200, start=3)
    parts = [encoded_records(encode_envelope("ingestion_warnings", records), len(records))
             for records in (first, second)]
    assert all(p is not None for p in parts)
    data = container([p for p in parts if p is not None])
    assert list(fastavro.reader(io.BytesIO(data))) == first + second


@pytest.mark.parametrize(("count", "why"), [(None, "no count header"), (4, "count header disagrees"),
                                            (0, "empty")])
def test_an_envelope_with_no_or_a_wrong_count_is_left_to_decoding(count: int | None, why: str) -> None:
    assert encoded_records(encode_envelope("ingestion_warnings", _warnings(3)), count) is None, why


def test_an_array_written_in_several_blocks_is_left_to_decoding() -> None:
    value = encode_envelope("ingestion_warnings", _warnings(2))
    # the same two records as two blocks of one: count 1, record, count 1, record, 0
    one = encode_envelope("ingestion_warnings", _warnings(1))
    other = encode_envelope("ingestion_warnings", _warnings(1, start=1))
    blocks = one[:-1] + other[5:]
    assert encoded_records(value, 2) is not None
    assert encoded_records(blocks, 2) is None


def test_unknown_schema_ids_and_foreign_bytes_are_left_to_decoding() -> None:
    value = encode_envelope("ingestion_warnings", _warnings(1))
    assert encoded_records(b"\x00\x00\x00\x03\xe7" + value[5:], 1) is None  # schema id 999
    assert encoded_records(b"not avro at all\x00", 1) is None
    raw = encode_envelope("raw_envelope", [])
    assert encoded_records(raw, 1) is None


def test_a_container_holds_one_schema() -> None:
    warning = encoded_records(encode_envelope("ingestion_warnings", _warnings(1)), 1)
    assert warning is not None
    with pytest.raises(ValueError, match="no records"):
        container([])
