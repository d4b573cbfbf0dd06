"""The dead-letter topic, tallied for the ops page: how many letters there are, how many per stage
and reason, and the latest few.

Reading the whole topic every refresh would cost more the longer Headwater runs, so the tally
reads incrementally: it remembers where it stopped in each partition and reads only what came
after (``read_dead_letters(since=...)``). It never reads more than ``cap`` letters of a partition
at once (the newest); the total always comes from the partitions' offsets, so it is exact even
when the per-reason counts cover only the letters read.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from headwater.dead_letters import dead_letter_offsets, read_dead_letters

CAP = 2000
"""Letters read from one partition per refresh at most (the newest ones)."""
LATEST = 8
"""Latest letters kept, with their reasons."""


@dataclass
class DeadLetterTally:
    """What the ops page shows of one dead-letter topic; ``refresh`` reads what is new."""

    bootstrap: str
    topic: str
    cap: int = CAP
    total: int = 0  # letters in the topic now (from offsets)
    read: int = 0  # letters counted in ``counts``
    skipped: int = 0  # letters passed over because more than ``cap`` arrived between two refreshes
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, reason) → letters
    latest: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LATEST))
    positions: dict[int, int] = field(default_factory=dict)  # partition → next offset to read

    def refresh(self) -> None:
        """Count the letters that arrived since the last refresh (blocking: Kafka calls)."""
        extent = dead_letter_offsets(self.bootstrap, self.topic)
        self.total = sum(high - low for low, high in extent.values())
        since: dict[int, int] = {}
        for partition, (low, high) in extent.items():
            start = max(low, self.positions.get(partition, low))
            if high - start > self.cap:
                self.skipped += high - self.cap - start
                start = high - self.cap
            since[partition] = start
            if start >= high:
                self.positions[partition] = high
        if all(since[p] >= high for p, (_, high) in extent.items()):
            return
        for letter in read_dead_letters(self.bootstrap, self.topic, since):
            self.counts[(letter.stage, letter.reason)] += 1
            self.read += 1
            self.positions[letter.partition] = letter.offset + 1
            summary = letter.summary()
            self.latest.append({k: summary[k] for k in ("time", "partition", "offset", "stage", "reason", "error",
                                                         "event", "events", "source_topic")})

    def to_json(self) -> dict[str, Any]:
        counts = [{"stage": stage, "reason": reason, "count": n} for (stage, reason), n in self.counts.most_common()]
        latest = sorted(self.latest, key=lambda d: (d["time"], d["partition"], d["offset"]), reverse=True)
        return {"topic": self.topic, "total": self.total, "read": self.read, "skipped": self.skipped,
                "by_reason": counts, "latest": latest}
