"""The persons workload: what the ``persons`` stage costs the worker, on a backlog with a realistic person mix.

A backlog of its own (``events`` events on a fresh isolated topology's capture topic, written
with the gateway's code by ``bench.worker.backlog``, packed as gateway flushes of ``PER_FLUSH``
events: envelopes of many distinct ids), posthog-js-like events (``bench.inprocess.event``):

- ``KNOWN_SHARE`` (90%) of the events come from ``known`` distinct ids, drawn uniformly, whose
  persons exist before any worker starts: ``prewarm`` writes them through the worker's own
  store (``streams.persons.store.PersonStore`` with ``apply_batch``, ``PREWARM_BATCH`` at a
  time), which puts them in Postgres and in the Redis cache, as a worker that saw them would;
- the other events come from new distinct ids, one event each: a person created per event;
- ``SET_SHARE`` (20%) carry ``$set`` (with a value that changes every time: a person write) and
  ``$set_once`` in their properties;
- each has a UUIDv7 made by the gateway's own ``uuid7``, as the gateway gives events without one.

Two ``headwater worker`` runs drain it, one after the other, each pinned to the server core with
a consumer group and table of its own and measured like the throughput part's worker
(``bench.worker.measure``): first **without persons** (the stage, ``pipeline.persons`` and the
person topics and sinks removed: ``without_persons``), then **with persons** (the default
topology). The first leaves Postgres and Redis as they were, so the second meets the mix above.

Reported: events/s and CPU µs/event of each; throughput with ÷ without (target
``RATIO_TARGET``; a miss is reported, not an invalid run); the person lookups by where they
were answered (``headwater_stream_person_lookups_total{source=cache|postgres|new}`` on the
worker's ``/metrics``); Postgres's and Redis's CPU per event; and the persons' share of the
worker's CPU, from the difference of the two runs (the worker exports no per-stage timing).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from bench.console import step
from bench.inprocess import event as bench_event
from bench.servers import Context
from bench.worker.backlog import Backlog, flushes, written_backlog
from bench.worker.measure import PERSON_LOOKUP_SOURCES, ConsumerResult, person_lookups_key
from bench.worker.suite import drain_edited
from capture_gateway.events import uuid7
from headwater.runtime.connections import Connections
from headwater.runtime.projects import find_project
from schemas.events import RawEvent
from streams.event import Position
from streams.persons.offsets import KafkaTopicIds
from streams.persons.process import apply_batch
from streams.persons.rules import PersonEvent
from streams.persons.store import PersonStore
from tests.support.topology import fresh_prefix, isolated_pipeline, isolated_topology

KNOWN_SHARE = 0.9  # of the events: from distinct ids whose persons exist already
SET_SHARE = 0.2  # of the events: with $set and $set_once
PER_FLUSH = 600  # events per gateway flush (the batch workload's backlog: ~147 per envelope over 4 partitions)
PREWARM_BATCH = 1_000  # known persons per store write
RATIO_TARGET = 0.7  # worker events/s with the persons stage ÷ without
PLANS = ("free", "pro", "team", "enterprise")
RUNS = (("without", "without persons"), ("with", "with persons"))


@dataclass
class PersonsPart:
    events: int
    known_ids: int
    new_ids: int = 0  # events (one each) from distinct ids no person had
    with_set: int = 0  # events carrying $set and $set_once
    envelopes: int = 0
    prewarm_s: float = 0.0
    fill_s: float = 0.0
    runs: dict[str, ConsumerResult] = field(default_factory=dict)  # "without", "with"
    problems: list[str] = field(default_factory=list)
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    """In every distinct id: each run meets the mix afresh, whatever persons earlier runs left in the stack."""

    @property
    def valid(self) -> bool:
        return not self.problems and len(self.runs) == len(RUNS) and all(r.valid for r in self.runs.values())

    def _both(self) -> tuple[ConsumerResult, ConsumerResult] | None:
        with_, without = self.runs.get("with"), self.runs.get("without")
        if with_ is None or without is None or not (with_.valid and without.valid):
            return None
        return with_, without

    @property
    def ratio(self) -> float | None:
        """Events/s with the persons stage ÷ without."""
        both = self._both()
        return both[0].events_per_s / both[1].events_per_s if both and both[1].events_per_s else None

    @property
    def cpu_ratio(self) -> float | None:
        """Events per CPU-second with ÷ without: the same ratio on one core, whatever else limited wall time."""
        both = self._both()
        return both[0].events_per_cpu_s / both[1].events_per_cpu_s if both and both[1].events_per_cpu_s else None

    @property
    def persons_cpu_share(self) -> float | None:
        """(CPU µs/event with - without) ÷ with: the stage, its person rows and sinks, as a share of the worker."""
        both = self._both()
        if not both or not both[0].cpu_us_per_event:
            return None
        return (both[0].cpu_us_per_event - both[1].cpu_us_per_event) / both[0].cpu_us_per_event

    def lookups(self) -> dict[str, int]:
        """Person lookups of the run with persons, by source (``cache``, ``postgres``, ``new``)."""
        run = self.runs.get("with")
        counters = run.counters if run is not None else {}
        return {s: int(counters.get(person_lookups_key(s), 0)) for s in PERSON_LOOKUP_SOURCES}

    def person_rows(self) -> int:
        """Rows the run with persons sent to ClickHouse's person tables (its sinks' rows less the events')."""
        run = self.runs.get("with")
        return max(0, int(run.counters.get("headwater_sink_rows_written_total", 0)) - run.rows) if run else 0

    @property
    def cache_share(self) -> float | None:
        """Lookups Redis answered ÷ all lookups (Postgres was asked for the rest: found, or a new person)."""
        found = self.lookups()
        total = sum(found.values())
        return found["cache"] / total if total else None


def without_persons(doc: dict[str, Any]) -> dict[str, Any]:
    """The topology ``doc`` without its ``persons`` stage, ``pipeline.persons``, the person topics and their sinks."""
    person_topics = set((doc["pipeline"].pop("persons", None) or {}).values())
    doc["pipeline"]["stages"] = [s for s in doc["pipeline"]["stages"] if s["type"] != "persons"]
    doc["sinks"] = [s for s in doc["sinks"] if s["source"] not in person_topics]
    doc["topics"] = {t: spec for t, spec in doc["topics"].items() if t not in person_topics}
    return doc


def _known_id(run: str, i: int) -> str:
    return f"person-{run}-{i:06d}"


def _initial_properties(run: str, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A known person's ``$set`` and ``$set_once``: a dozen properties, ~400 bytes."""
    props = bench_event(i)["properties"]
    return ({"email": f"{_known_id(run, i)}@example.com", "name": f"Person {i}", "plan": PLANS[i % len(PLANS)],
             "company": f"Company {i % 997}", "role": "engineer"},
            {"$initial_browser": props["$browser"], "$initial_os": props["$os"],
             "$initial_referrer": props["$referrer"], "$initial_current_url": props["$current_url"],
             "$initial_pathname": props["$pathname"], "$initial_utm_source": props["utm_source"],
             "$initial_device_type": props["$device_type"]})


async def prewarm(ctx: Context, run: str, known: int) -> None:
    """The ``known`` persons, written through the worker's store (Postgres, and its Redis cache)."""
    team = (await find_project(ctx.endpoints.postgres, ctx.token)).id
    connections = await Connections.open(ctx.endpoints.postgres, ctx.endpoints.redis)
    try:
        # no topics: no person rows to send; no positions: nothing moves the applied offsets
        store = PersonStore(connections.postgres, connections.redis, None, KafkaTopicIds(ctx.endpoints.kafka))
        now = int(time.time() * 1_000_000)
        for start in range(0, known, PREWARM_BATCH):
            batch: list[tuple[int, PersonEvent, Position | None]] = []
            for i in range(start, min(known, start + PREWARM_BATCH)):
                set_, set_once = _initial_properties(run, i)
                event = PersonEvent("$identify", _known_id(run, i), now, set=set_, set_once=set_once)
                batch.append((team, event, None))
            await apply_batch(store, batch)
    finally:
        await connections.close()


def persons_events(token: str, part: PersonsPart) -> Iterator[RawEvent]:
    """The backlog's events (see the module docstring), counting new ids and ``$set`` events into ``part``."""
    rng = random.Random(11)  # noqa: S311 - a workload, not a secret
    now = int(time.time() * 1_000_000)
    for n in range(part.events):
        if rng.random() < KNOWN_SHARE:
            distinct_id = _known_id(part.run, rng.randrange(part.known_ids))
        else:
            distinct_id = f"new-{part.run}-{part.new_ids:07d}"
            part.new_ids += 1
        shape = bench_event(n)
        props = {**shape["properties"], "token": token, "distinct_id": distinct_id}
        if rng.random() < SET_SHARE:
            props["$set"] = {"plan": rng.choice(PLANS), "last_pathname": props["$pathname"], "events_seen": n}
            props["$set_once"] = {"first_pathname": props["$pathname"]}
            part.with_set += 1
        yield RawEvent(uuid=uuid7(), event=shape["event"], distinct_id=distinct_id, token=token,
                       timestamp=now, now=now, sent_at=now, ip="127.0.0.1",
                       properties=orjson.dumps(props).decode(), set=None, set_once=None, historical_migration=False,
                       capture_warnings=[], skip_person_processing=False)


def _backlog(ctx: Context, part: PersonsPart) -> Backlog:
    doc = isolated_topology(fresh_prefix("bench_persons_"))
    ctx.topics += list(doc["topics"])
    pipeline = isolated_pipeline(ctx.endpoints.kafka, ctx.run_dir / "topology-persons-backlog.yaml", doc)
    partitions = pipeline.partitions(pipeline.topology.capture.topic)
    envelopes = list(flushes(persons_events(ctx.token, part), partitions, PER_FLUSH))
    part.envelopes = len(envelopes)
    return written_backlog(pipeline, ctx.endpoints.kafka, envelopes, "the persons workload, written by the bench")


def _drain(ctx: Context, backlog: Backlog, key: str, label: str) -> ConsumerResult:
    return drain_edited(ctx, backlog, f"persons_{key}", f"persons · {label}",
                        without_persons if key == "without" else None)


def run_persons(ctx: Context, events: int, known: int) -> PersonsPart:
    """See the module docstring."""
    part = PersonsPart(events, known)
    began = time.monotonic()
    asyncio.run(prewarm(ctx, part.run, known))
    part.prewarm_s = round(time.monotonic() - began, 1)
    step(f"persons: {known:,} known persons written through the store in {part.prewarm_s:.1f}s")
    began = time.monotonic()
    backlog = _backlog(ctx, part)
    part.fill_s = round(time.monotonic() - began, 1)
    step(f"persons: {backlog.total:,} events in {part.envelopes:,} envelopes in {part.fill_s:.1f}s: "
         f"{part.new_ids:,} from new distinct ids, {part.with_set:,} with $set/$set_once")
    for key, label in RUNS:
        part.runs[key] = _drain(ctx, backlog, key, label)
    ratio = part.ratio
    step(f"persons: with ÷ without {ratio:.3f} (events/s)" if ratio is not None else
         "[red]persons: no ratio (a run was invalid)[/]")
    return part


def part_json(part: PersonsPart) -> dict[str, Any]:
    ratio, lookups = part.ratio, part.lookups()
    return {
        "events": part.events, "known_ids": part.known_ids, "new_ids": part.new_ids, "with_set": part.with_set,
        "envelopes": part.envelopes, "prewarm_s": part.prewarm_s, "fill_s": part.fill_s,
        "mix": {"known_share": KNOWN_SHARE, "set_share": SET_SHARE, "per_flush": PER_FLUSH},
        "runs": {key: {**asdict(r), "valid": r.valid, "events_per_s": round(r.events_per_s, 1),
                       "events_per_cpu_s": round(r.events_per_cpu_s, 1),
                       "cpu_us_per_event": round(r.cpu_us_per_event, 2)} for key, r in part.runs.items()},
        "ratio_events_per_s": None if ratio is None else round(ratio, 3),
        "ratio_events_per_cpu_s": None if part.cpu_ratio is None else round(part.cpu_ratio, 3),
        "persons_cpu_share": None if part.persons_cpu_share is None else round(part.persons_cpu_share, 3),
        "person_lookups": lookups, "person_rows": part.person_rows(),
        "cache_share": None if part.cache_share is None else round(part.cache_share, 4),
        "targets": {} if ratio is None else {"with_vs_without": {
            "value": round(ratio, 3), "target": RATIO_TARGET, "compare": ">=", "met": ratio >= RATIO_TARGET}},
        "valid": part.valid, "problems": part.problems,
    }
