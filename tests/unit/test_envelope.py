"""Envelopes keep per-key order, respect the size cap, and carry a key only when all events share it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import Envelope, pack
from schemas.partitioner import partition_for

Event = tuple[str, int]  # (distinct_id, sequence number)


def _pack(events: list[Event], partitions: int, max_bytes: int = 10_000) -> list[Envelope[Event]]:
    return pack(events, key_of=lambda e: e[0].encode(), size_of=lambda e: 100, partitions=partitions,
                max_bytes=max_bytes)


@given(st.lists(st.sampled_from("abcdefghij"), max_size=200), st.integers(1, 8), st.integers(100, 2000))
def test_every_event_once_in_order_per_key_on_its_partition(ids: list[str], partitions: int, cap: int) -> None:
    events = [(d, i) for i, d in enumerate(ids)]
    envelopes = _pack(events, partitions, cap)
    flat = [e for env in envelopes for e in env.events]
    assert sorted(flat, key=lambda e: e[1]) == events
    for env in envelopes:
        assert env.events
        assert len(env.events) * 100 <= max(cap, 100)
        for distinct_id, _ in env.events:
            assert partition_for(distinct_id.encode(), partitions) == env.partition
    for key in set(ids):
        seq = [e[1] for env in envelopes for e in env.events if e[0] == key]
        assert seq == sorted(seq)


def test_key_is_shared_key_or_none() -> None:
    single = _pack([("a", 0), ("a", 1)], 1)
    assert [e.key for e in single] == [b"a"]
    mixed = _pack([("a", 0), ("b", 1)], 1)
    assert [e.key for e in mixed] == [None]
