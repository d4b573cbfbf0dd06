"""A writer for the newest ``processed_envelope`` schema, for the worker's hot path (``schemas.layout``)."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.events import ProcessedEvent
from schemas.layout import END, FALSE, NULL, SOME, TRUE, envelope_header, long_bytes, text_bytes

# (field, Avro type) of ProcessedEvent in the order the schema declares them.
FIELDS = (
    ("uuid", "string"), ("event", "string"), ("properties", "string"), ("timestamp", "long"), ("team_id", "long"),
    ("distinct_id", "string"), ("elements_chain", "string"), ("created_at", "long"), ("person_id", "string"),
    ("person_properties", "string"), ("person_created_at", "null|long"), ("person_mode", "string"),
    ("group_0", "string"), ("group_1", "string"), ("group_2", "string"), ("group_3", "string"),
    ("group_4", "string"), ("historical_migration", "boolean"),
)

_HEADER = envelope_header("processed_envelope", FIELDS, "schemas/processed_writer.py")
_EMPTY = text_bytes("")


def encode_processed_envelope(events: Sequence[ProcessedEvent]) -> bytes:
    """``{"events": events}`` in the Confluent wire format, as ``AvroSerializer("processed_envelope")`` writes it."""
    parts = [_HEADER]
    if events:
        parts.append(long_bytes(len(events)))
        texts: dict[str, bytes] = {}  # values that repeat across a batch: names, teams, modes, empty groups

        def text(value: str) -> bytes:
            found = texts.get(value)
            if found is None:
                found = texts[value] = text_bytes(value)
            return found

        for e in events:
            created = e["person_created_at"]
            groups = (e["group_0"], e["group_1"], e["group_2"], e["group_3"], e["group_4"])
            parts += (
                text_bytes(e["uuid"]), text(e["event"]), text_bytes(e["properties"]), long_bytes(e["timestamp"]),
                long_bytes(e["team_id"]), text(e["distinct_id"]), text(e["elements_chain"]),
                long_bytes(e["created_at"]), text(e["person_id"]), text(e["person_properties"]),
                NULL if created is None else SOME + long_bytes(created), text(e["person_mode"]),
                *[_EMPTY if not g else text(g) for g in groups],
                TRUE if e["historical_migration"] else FALSE,
            )
    parts.append(END)
    return b"".join(parts)
