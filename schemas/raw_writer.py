"""A writer for the newest ``raw_envelope`` schema, for the gateway's hot path (``schemas.layout``).

``AvroSerializer`` still reads and writes every other subject, and reads these envelopes back.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.events import RawEvent
from schemas.layout import END as _END
from schemas.layout import FALSE as _FALSE
from schemas.layout import NULL as _NULL
from schemas.layout import SOME as _SOME
from schemas.layout import TRUE as _TRUE
from schemas.layout import envelope_header
from schemas.layout import long_bytes as _long
from schemas.layout import text_bytes as _text

# (field, Avro type) of RawEvent in the order the schema declares them.
FIELDS = (
    ("uuid", "string"), ("event", "string"), ("distinct_id", "string"), ("token", "string"),
    ("timestamp", "long"), ("now", "long"), ("sent_at", "null|long"), ("ip", "null|string"),
    ("properties", "string"), ("set", "null|string"), ("set_once", "null|string"),
    ("historical_migration", "boolean"), ("capture_warnings", "array<string>"),
    ("skip_person_processing", "boolean"),
)

_HEADER = envelope_header("raw_envelope", FIELDS, "schemas/raw_writer.py")


def encode_raw_envelope(events: Sequence[RawEvent]) -> bytes:
    """``{"events": events}`` in the Confluent wire format, as ``AvroSerializer("raw_envelope")`` writes it."""
    parts = [_HEADER]
    if events:
        parts.append(_long(len(events)))
        shared: dict[tuple[str, int, str | None], tuple[bytes, bytes, bytes]] = {}  # token, now, ip repeat
        for e in events:
            token, now, ip = e["token"], e["now"], e["ip"]
            same = shared.get((token, now, ip))
            if same is None:
                same = shared[(token, now, ip)] = (_text(token), _long(now), _NULL if ip is None else _SOME + _text(ip))
            sent_at, set_, set_once, warnings = e["sent_at"], e["set"], e["set_once"], e["capture_warnings"]
            parts += (
                _text(e["uuid"]), _text(e["event"]), _text(e["distinct_id"]), same[0], _long(e["timestamp"]), same[1],
                _NULL if sent_at is None else _SOME + _long(sent_at), same[2], _text(e["properties"]),
                _NULL if set_ is None else _SOME + _text(set_), _NULL if set_once is None else _SOME + _text(set_once),
                _TRUE if e["historical_migration"] else _FALSE,
            )
            if warnings:
                parts.append(_long(len(warnings)))
                parts += map(_text, warnings)
            parts += (_END, _TRUE if e["skip_person_processing"] else _FALSE)
    parts.append(_END)
    return b"".join(parts)
