""""Did you mean …?": the closest of the names a user could have meant, for error messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely misspells, or ``None`` when none is close enough."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``": did you mean 'x'?"`` to append to a message, or ``""`` when nothing is close."""
    found = closest(word, choices)
    return f": did you mean {found!r}?" if found is not None else ""
