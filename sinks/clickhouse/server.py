"""What a ClickHouse server can take, from its ``SELECT version()``.

Headwater's tables and its fast insert path use types and formats of current ClickHouse: ``Bool``,
``DateTime64``, ``now64``, the ``input()`` table function and the ``Avro`` input format,
``JSONCompactEachRow``. A server older than ``CURRENT`` gets the legacy layout of
``schemas.clickhouse`` (whole-second ``DateTime``, ``UInt8``) and rows as ``JSONEachRow`` or
native blocks, never Avro. Only two points of that range are tested: ClickHouse 18.16 (Debian's
package, the oldest) and chDB (current); the cut is where every feature above exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CURRENT = (22, 1)
"""The first version assumed to have everything the current layout and the Avro path use (``Bool`` is the
newest of them)."""


@dataclass(frozen=True)
class Server:
    version: str
    """As the server says it, e.g. ``18.16.1`` or ``26.9.2.1``."""

    @property
    def release(self) -> tuple[int, int]:
        found = re.match(r"(\d+)\.(\d+)", self.version)
        return (int(found[1]), int(found[2])) if found else (0, 0)

    @property
    def legacy(self) -> bool:
        """True for a server older than ``CURRENT``: the legacy table layout, no Avro, rows as JSONEachRow."""
        return self.release < CURRENT

    @property
    def reads_avro(self) -> bool:
        """Whether ``INSERT … SELECT … FROM input(…) FORMAT Avro`` works here."""
        return not self.legacy
