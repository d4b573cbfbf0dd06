"""Where the files sink's files go: ``FileStore``, implemented here for a local directory.

An object store (S3, GCS) implements the same six calls: its ``put`` of a whole object is atomic
already, so it needs no temporary name.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from typing import Protocol

from sinks.errors import PermanentSinkError, RetriableSinkError

PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}
"""Failures retrying cannot mend (the rest, a full disk say, are retried)."""


class FileStore(Protocol):
    """Files under one root, named by ``/``-separated relative paths. Blocking calls: the sink runs
    them in a thread. Raise ``RetriableSinkError`` or ``PermanentSinkError``."""

    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` whole or not at all: a reader never sees part of a file."""
        ...

    def names(self, suffix: str) -> list[str]:
        """Every path whose last component ends with ``suffix``."""
        ...

    def get(self, path: str) -> bytes:
        """The whole file at ``path``."""
        ...

    def delete(self, path: str) -> None:
        """Remove ``path`` (gone already is fine)."""
        ...

    def describe(self) -> str:
        """Where the files are, for messages."""
        ...

    def check(self) -> None:
        """Raise unless files can be written now (``PermanentSinkError`` when they never will)."""
        ...


def _translated(exc: OSError, doing: str) -> Exception:
    kind = PermanentSinkError if exc.errno in PERMANENT_ERRNOS else RetriableSinkError
    return kind(f"{doing}: {exc.strerror or exc}")


class LocalFileStore:
    """A local directory: a file is written under a hidden temporary name, fsynced, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, path: str, data: bytes) -> None:
        target = self.root / path
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a power cut
            finally:
                os.close(directory)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise _translated(exc, f"writing {target}") from exc

    def names(self, suffix: str) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob(f"*{suffix}") if p.is_file())

    def get(self, path: str) -> bytes:
        try:
            return (self.root / path).read_bytes()
        except OSError as exc:
            raise _translated(exc, f"reading {self.root / path}") from exc

    def delete(self, path: str) -> None:
        try:
            (self.root / path).unlink(missing_ok=True)
        except OSError as exc:
            raise _translated(exc, f"removing {self.root / path}") from exc

    def describe(self) -> str:
        return str(self.root)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _translated(exc, f"creating {self.root}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermanentSinkError(f"{self.root} is not writable by this user")
