"""How many copies of each partition, and how many must acknowledge a write: the rules by cluster size.

One rule for the topics ``headwater migrate`` creates and for the broker's own topics (consumer
offsets, transaction state) in the local stack: three copies where the cluster has three
brokers or more, else one per broker; and writes (``acks=all``) wait for all copies but one,
at most two and at least one. With three copies and ``min.insync.replicas`` 2 a cluster keeps
accepting writes with one broker down, and an acknowledged write is on two brokers.
"""

from __future__ import annotations

DEFAULT_MAX_REPLICAS = 3


def default_replication(brokers: int) -> int:
    """The replication factor of a topic whose topology says none: ``min(3, brokers)``."""
    return max(1, min(DEFAULT_MAX_REPLICAS, brokers))


def min_insync_replicas(replication: int) -> int:
    """``min.insync.replicas`` for ``replication`` copies: one fewer, capped at 2, at least 1."""
    return max(1, min(2, replication - 1))
