"""The event-time window engine: windows close by event time plus grace, once; late events are counted."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from streams.windows.engine import (
    MICROS,
    Aggregation,
    Closed,
    PartitionWindows,
    WindowShape,
    feed,
    key_of,
)

MINUTE = 60 * MICROS
T0 = 1_700_000_040 * MICROS - (1_700_000_040 * MICROS) % MINUTE  # a minute boundary
AGGS = [Aggregation("events", "count"), Aggregation("people", "uniq", "distinct_id"),
        Aggregation("revenue", "sum", "properties.price"), Aggregation("top", "max", "properties.price")]


def ev(seconds: float, event: str = "pageview", who: str = "u1", **props: Any) -> dict[str, Any]:
    return {"timestamp": T0 + int(seconds * MICROS), "event": event, "team_id": 7, "distinct_id": who,
            "properties": props}


def minutes(grace_seconds: int = 10, idle_seconds: int | None = None) -> PartitionWindows:
    idle = idle_seconds * MICROS if idle_seconds is not None else None
    return PartitionWindows(WindowShape(MINUTE, MINUTE, grace_seconds * MICROS, idle), AGGS)


def test_a_tumbling_window_closes_once_when_the_watermark_passes_end_plus_grace() -> None:
    windows = minutes(grace_seconds=10)
    assert feed(windows, [ev(1, who="a", price=5), ev(30, who="b", price=7), ev(59, who="a")], ["event"], 0) == []
    assert feed(windows, [ev(65)], ["event"], 0) == []  # the next minute, but within grace
    [closed] = feed(windows, [ev(70.5)], ["event"], 0)
    assert closed == Closed(("pageview",), T0, T0 + MINUTE, {"events": 3, "people": 2, "revenue": 12.0, "top": 7.0},
                            skipped=2)  # the event without a price, for sum and for max
    assert feed(windows, [ev(71)], ["event"], 0) == []  # emitted once, and forgotten
    assert [start for _, start in windows.open] == [T0 + MINUTE]


def test_out_of_order_events_within_grace_count_and_beyond_grace_are_late() -> None:
    windows = minutes(grace_seconds=10)
    feed(windows, [ev(50), ev(65)], ["event"], 0)
    assert windows.add(("pageview",), ev(55)["timestamp"], ev(55), 0)  # 10 s back, window still open
    feed(windows, [ev(75)], ["event"], 0)  # closes the first minute
    assert not windows.add(("pageview",), ev(58)["timestamp"], ev(58), 0)
    assert windows.late == 1


def test_keys_split_windows_and_read_properties() -> None:
    windows = minutes()
    records = [ev(1, "pageview", **{"$browser": "Firefox"}), ev(2, "pageview", **{"$browser": "Chrome"}),
               ev(3, "purchase", **{"$browser": "Firefox"}), ev(4, "pageview", **{"$browser": "Firefox"})]
    closed = feed(windows, [*records, ev(200)], ["event", "properties.$browser"], 0)
    assert {c.key: c.values["events"] for c in closed} == {
        ("pageview", "Firefox"): 2, ("pageview", "Chrome"): 1, ("purchase", "Firefox"): 1}
    assert key_of({"team_id": 7, "properties": {}}, ["team_id", "properties.missing"]) == ("7", "")


def test_hopping_windows_hold_each_event_size_over_step_times() -> None:
    windows = PartitionWindows(WindowShape(5 * MINUTE, MINUTE, 0), [Aggregation("events", "count")])
    closed = feed(windows, [ev(s * 60 + 1) for s in range(10)], [], 0) + feed(windows, [ev(3600)], [], 0)
    counts = {(c.start - T0) // MINUTE: int(c.values["events"] or 0) for c in closed}
    assert counts[0] == 5  # minutes 0-4
    assert counts[-4] == 1  # the window that ends after minute 0
    assert sum(counts.values()) == 10 * 5


def test_an_idle_partition_moves_its_watermark_on_by_wall_time() -> None:
    windows = minutes(grace_seconds=10, idle_seconds=30)
    assert feed(windows, [ev(5)], [], now=100.0) == []
    windows.advance_idle(120.0)  # idle 20 s: not yet
    assert windows.close() == []
    windows.advance_idle(175.0)  # idle 75 s: the watermark moves 75 s on, past minute one plus grace
    assert [c.values["events"] for c in windows.close()] == [1]


def test_state_survives_a_restart() -> None:
    windows = minutes()
    feed(windows, [ev(1, who="a", price=2), ev(2, who="b", price="x")], ["event"], 0)
    restored = PartitionWindows.from_state(windows.shape, AGGS, windows.to_state())
    assert feed(restored, [ev(3, who="a", price=3), ev(200)], ["event"], 0) == [
        Closed(("pageview",), T0, T0 + MINUTE, {"events": 3, "people": 2, "revenue": 5.0, "top": 3.0}, skipped=2)]


def test_counts_equal_a_group_by_for_shuffled_events_within_grace() -> None:
    """Whatever order the events of a minute arrive in (within grace), the closed windows hold what
    ``GROUP BY event, toStartOfMinute(timestamp)`` gives."""
    import random

    rng = random.Random(7)
    records = [ev(rng.uniform(0, 600), rng.choice(["a", "b", "c"]), f"u{rng.randrange(20)}") for _ in range(2000)]
    # each arrives up to 30 s out of order: within the 60 s grace
    shuffled = sorted(records, key=lambda r: r["timestamp"] + rng.uniform(-30, 30) * MICROS)
    windows = minutes(grace_seconds=60)
    closed = feed(windows, [*shuffled, ev(10_000)], ["event"], 0)
    expected = Counter((r["event"], (r["timestamp"] - T0) // MINUTE) for r in shuffled)
    got = {(c.key[0], (c.start - T0) // MINUTE): c.values["events"] for c in closed if c.start < T0 + 10 * MINUTE}
    assert windows.late == 0
    assert got == dict(expected)


def test_a_step_must_divide_the_size() -> None:
    with pytest.raises(ValueError, match="must divide"):
        WindowShape(5 * MINUTE, 2 * MINUTE, 0)
