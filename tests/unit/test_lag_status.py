"""Burrow's rules over a partition's samples (``headwater.ops.status``), and the readers a topology has."""

from __future__ import annotations

import pytest

from headwater.ops.status import Sample, Status, fails, judge, worst
from headwater.runtime.topology import load_topology
from headwater.runtime.topology.readers import readers
from tests.conftest import DEFAULT_TOPOLOGY


def samples(*points: tuple[int | None, int]) -> list[Sample]:
    """(committed, end) once a second."""
    return [Sample(float(i), committed, 0, end) for i, (committed, end) in enumerate(points)]


@pytest.mark.parametrize(("points", "assigned", "status", "rule"), [
    ([(10, 10), (20, 20)], True, Status.OK, "caught up"),
    ([(10, 30), (25, 35), (40, 40)], True, Status.OK, "caught up"),
    ([(10, 30), (20, 32), (30, 33)], True, Status.OK, "consuming (3 message(s) behind)"),
    ([(None, 0), (None, 0)], False, Status.OK, "no committed offset, nothing to read yet"),
    ([(None, 5), (None, 9)], True, Status.ERR, "no committed offset, and 9 message(s) are waiting"),
    ([(10, 12), (10, 15)], False, Status.STOP, "no member of the group reads it, and 5 message(s) are waiting"),
    ([(10, 12), (10, 15)], True, Status.STALL, "the committed offset stayed at 10 for 1s while 5 message(s) wait"),
    ([(10, 12), (11, 15), (12, 19)], True, Status.WARN, "the lag grew in each of the last 3 samples (2 → 7)"),
    ([(10, 12), (11, 15)], True, Status.OK, "consuming (4 message(s) behind)"),  # two samples: no trend yet
])
def test_the_rules(points: list[tuple[int | None, int]], assigned: bool, status: Status, rule: str) -> None:
    assert judge(samples(*points), assigned) == (status, rule)


def test_a_committed_offset_below_the_log_start_counts_from_the_start() -> None:
    assert Sample(0.0, 3, 10, 15).lag == 5  # retention removed 3..9: those can no longer be read


def test_the_worst_status_and_the_fail_threshold() -> None:
    assert worst([Status.OK, Status.WARN, Status.STOP]) == Status.STOP
    assert worst([]) == Status.OK
    assert fails(Status.STOP, Status.ERR)
    assert fails(Status.STALL, Status.ERR)
    assert not fails(Status.WARN, Status.ERR)
    assert fails(Status.WARN, Status.WARN)
    assert not fails(Status.OK, Status.WARN)


def test_the_default_topology_has_a_reader_for_the_pipeline_every_sink_and_window() -> None:
    topology = load_topology(DEFAULT_TOPOLOGY)
    found = {r.role: r for r in readers(topology)}
    assert found["pipeline"].group == topology.app_id
    assert {f"sink:{s.name}" for s in topology.sinks} <= set(found)
    for window in topology.windows:
        assert found[f"window:{window.name}"].topics == (window.repartition(topology.app_id),)
        # the pipeline re-keys a window over its output: no re-key group of its own
        assert (f"window:{window.name}:rekey" in found) == (not topology.rekeyed_by_pipeline(window))
