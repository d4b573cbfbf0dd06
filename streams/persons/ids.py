"""Distinct ids that must never be merged: placeholders SDKs and apps send by mistake."""

from __future__ import annotations

ILLEGAL_ANY_CASE = frozenset({
    "anonymous", "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email", "undefined",
    "true", "false",
})
ILLEGAL_EXACT = frozenset({"[object Object]", "NaN", "None", "none", "null", "0"})
_QUOTES = "'\"`"
MAX_DISTINCT_ID = 400  # what validation allows an event's distinct_id


def illegal_distinct_id(value: object) -> bool:
    """True for an id a merge must refuse: empty, whitespace, a placeholder, one of those quoted, or too long."""
    if not isinstance(value, str) or len(value) > MAX_DISTINCT_ID:
        return True
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        text = text[1:-1].strip()
    return not text or text in ILLEGAL_EXACT or text.lower() in ILLEGAL_ANY_CASE
