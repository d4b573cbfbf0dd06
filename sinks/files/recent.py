"""The event uuids a files sink wrote last, per source partition: what keeps a duplicate out of the files.

The pipeline's output holds an event twice after a worker died between writing a batch's
processed events and committing it: the batch is processed again and its events written again,
right after the first copies, on the same partition (they keep their key). So remembering the
last ``capacity`` uuids of each partition, and reading them back from the newest files when the
sink starts, is enough to write each event once: a batch is at most a few thousand events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class RecentIds:
    """The last ``capacity`` ids added, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def add(self, uuid: str) -> bool:
        """Remember ``uuid``; False when it was remembered already (a duplicate)."""
        if uuid in self._ids:
            return False
        self._ids.add(uuid)
        self._order.append(uuid)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())
        return True

    def extend(self, uuids: Iterable[str]) -> None:
        """Remember ``uuids``, oldest first."""
        for uuid in uuids:
            self.add(uuid)

    def __len__(self) -> int:
        return len(self._order)
