"""Burrow's lag rules, over a few samples of one partition: OK, WARN, STALL, STOP, ERR.

Each status comes with the rule that fired, in words. The rules, for a partition sampled over an
evaluation window (``headwater lag --window``):

- **ERR**: the group has no committed offset for it and messages are waiting;
- **STOP**: messages are waiting and no member of the group has it assigned (stopped, crashed,
  or the group is rebalancing);
- **STALL**: messages are waiting, a member has it, and the committed offset did not move during
  the window;
- **WARN**: the lag grew from each sample to the next, though the group commits;
- **OK**: anything else (caught up, or catching up).

A group's status is its worst partition's; ``--fail-on`` compares severities (STALL, STOP and
ERR are all errors: a group in one of them is not keeping up at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    ERR = "ERR"


SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.STALL: 2, Status.STOP: 2, Status.ERR: 2}
ORDER = [Status.OK, Status.WARN, Status.STALL, Status.STOP, Status.ERR]  # ties in severity: the later is worse


@dataclass(frozen=True)
class Sample:
    """One look at a partition: when, the group's committed offset (None: none), the log's start and end."""

    at: float
    committed: int | None
    start: int
    end: int

    @property
    def lag(self) -> int:
        """Messages the group has not consumed yet (from the log's start when it committed nothing)."""
        return max(0, self.end - (self.start if self.committed is None else max(self.committed, self.start)))


def judge(samples: Sequence[Sample], assigned: bool) -> tuple[Status, str]:
    """The status of a partition from its samples (oldest first) and whether a member has it."""
    first, last = samples[0], samples[-1]
    if last.committed is None:
        if last.lag > 0:
            return Status.ERR, f"no committed offset, and {last.lag} message(s) are waiting"
        return Status.OK, "no committed offset, nothing to read yet"
    if last.lag == 0:
        return Status.OK, "caught up"
    if not assigned:
        return Status.STOP, f"no member of the group reads it, and {last.lag} message(s) are waiting"
    if len(samples) > 1 and first.committed == last.committed:
        return Status.STALL, (f"the committed offset stayed at {last.committed} for {last.at - first.at:.0f}s "
                              f"while {last.lag} message(s) wait")
    lags = [s.lag for s in samples]
    if len(lags) > 2 and all(b > a for a, b in pairwise(lags)):
        return Status.WARN, f"the lag grew in each of the last {len(lags)} samples ({lags[0]} → {lags[-1]})"
    return Status.OK, f"consuming ({last.lag} message(s) behind)"


def worst(statuses: Sequence[Status]) -> Status:
    """The worst of ``statuses`` (OK when there are none)."""
    return max(statuses, key=lambda s: (SEVERITY[s], ORDER.index(s)), default=Status.OK)


def fails(status: Status, threshold: Status) -> bool:
    """Whether ``status`` is as bad as ``threshold`` or worse (``--fail-on``)."""
    return SEVERITY[status] >= SEVERITY[threshold]
