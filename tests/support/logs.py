"""Log files of the processes tests start: their tail, and what they gained since the last look."""

from __future__ import annotations

from pathlib import Path


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of ``path`` ("(no log)" if it does not exist yet)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class LogWatch:
    """What a log gained since the last look (the first look: since the watch was made)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new(self) -> str:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        return data.decode(errors="replace")
