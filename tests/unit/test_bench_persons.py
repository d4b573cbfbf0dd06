"""The bench's persons workload: the topology it compares against and the mix it sends (no timing).

``make bench`` sets the worker with its persons stage against the same backlog with the stage
removed; if the default topology grows another person topic or sink, the "without" side must
still load and must still leave every person part out, or the ratio measures the wrong thing.
"""

from __future__ import annotations

from pathlib import Path

from bench.worker.backlog import flushes
from bench.worker.persons import KNOWN_SHARE, SET_SHARE, PersonsPart, persons_events, without_persons
from headwater.runtime.topology import load_topology
from schemas.envelope import event_key
from schemas.partitioner import partition_for
from streams.components import component_problems
from tests.support.topology import isolated_topology, write_yaml


def test_without_persons_loads_and_leaves_every_person_part_out(tmp_path: Path) -> None:
    doc = isolated_topology("x_")
    person_topics = set(doc["pipeline"]["persons"].values())
    topology = load_topology(write_yaml(tmp_path / "t.yaml", without_persons(doc)), [component_problems])
    assert "persons" not in [s.type for s in topology.pipeline.stages]
    assert topology.pipeline.persons is None
    assert not person_topics & set(topology.topics)
    assert not person_topics & {s.source for s in topology.sinks}
    assert "prepare" in [s.type for s in topology.pipeline.stages]


def test_the_mix_has_known_and_new_ids_and_person_updates() -> None:
    part = PersonsPart(events=5_000, known_ids=500)
    events = list(persons_events("phc_test", part))
    assert len(events) == 5_000
    new = [e for e in events if e["distinct_id"].startswith("new-")]
    assert len(new) == part.new_ids == len({e["distinct_id"] for e in new})  # each new id once
    assert abs(len(new) / len(events) - (1 - KNOWN_SHARE)) < 0.03
    assert len({e["distinct_id"] for e in events if e not in new}) <= 500
    with_set = [e for e in events if '"$set"' in e["properties"] and '"$set_once"' in e["properties"]]
    assert len(with_set) == part.with_set
    assert abs(part.with_set / len(events) - SET_SHARE) < 0.03


def test_flushes_put_each_event_on_its_keys_partition_in_order() -> None:
    part = PersonsPart(events=2_000, known_ids=100)
    events = list(persons_events("phc_test", part))
    envelopes = list(flushes(events, 4, 600))
    assert sum(len(e.events) for e in envelopes) == 2_000
    for envelope in envelopes:
        assert all(partition_for(event_key(e["token"], e["distinct_id"]), 4) == envelope.partition
                   for e in envelope.events)
    order = {e["uuid"]: i for i, e in enumerate(events)}
    for partition in range(4):
        seen = [order[e["uuid"]] for env in envelopes if env.partition == partition for e in env.events]
        assert seen == sorted(seen)
