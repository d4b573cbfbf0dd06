"""Reading a window's results (``window_results`` envelopes) in tests."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.serializer import decode_envelope


def result(value: bytes) -> dict[str, Any]:
    """A ``window_results`` envelope's one window, its key and values read."""
    subject, records = decode_envelope(value)
    assert subject == "window_results"
    assert len(records) == 1
    return {**records[0], "key": orjson.loads(records[0]["key"]), "values": orjson.loads(records[0]["values"])}
