"""``headwater topology test``: YAML test cases run through the stages without a broker.

A cases file (``topology.tests.yaml`` beside the topology by default)::

    project: {id: 1, token: phc_test}          # what resolve_project answers
    cases:
      - name: bots are dropped
        until: bot_filter                       # optional: stop after this stage
        input:                                  # events as an SDK sends them
          - {event: $pageview, distinct_id: u1, properties: {$raw_user_agent: Googlebot/2.1}}
        expect:                                 # one entry per input event, in order
          - dropped: true                       # or dead_letter: true, or a subset of the output:
          # - {event: $pageview, properties: {$browser: Chrome}}

``windows`` checks the topology's windows over the pipeline's output: every window each one
emits for the case's output events, oldest first, with a subset of its key and values::

        windows:
          event_rollups:
            - {start: "2026-01-01T10:00:00Z", key: {event: purchase}, values: {events: 2}}

The windows see the output events in input order, all in one partition; the end of the input
closes every window still open, and an event beyond a closed window's grace is late (not counted).

Inputs go through the gateway's capture rules first, so they look exactly like captured events.
Expected properties are a subset: keys not listed are not checked. ``person_properties`` (a
subset too) and ``same_person_as: <index of an earlier input>`` check the ``persons`` stage,
which keeps a case's people in memory from one input to the next. The stages are started as
the worker starts them, so a plugin whose ``setup`` fails ends the run with a
``StageStartError`` naming the stage, as the worker would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML

from capture_gateway.errors import CaptureError
from capture_gateway.events import Batch, CaptureContext, now_micros, request_token, to_raw_event
from headwater.errors import TopologyError
from headwater.runtime.projects import Project
from headwater.runtime.topology import Topology
from schemas.events import ProcessedEvent
from streams.components import build_stages
from streams.event import PipelineEvent
from streams.plugins.kv import MemoryKeyValue
from streams.runner import StageRunner
from streams.stages.base import StageResources
from streams.windows.engine import PartitionWindows
from streams.windows.runner import WindowInput, aggregations_of, nested, shape_of


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseProject(_Strict):
    id: int = 1
    token: str = "phc_test"  # noqa: S105 - the made-up token cases are captured with


class Expect(_Strict):
    dropped: bool = False
    dead_letter: bool = False
    event: str | None = None
    distinct_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    person_properties: dict[str, Any] | None = None
    """A subset of the person's properties after the event (the ``persons`` stage)."""
    same_person_as: int | None = None
    """The index of an earlier input whose event left with the same ``person_id``."""


class ExpectWindow(_Strict):
    key: dict[str, str] = Field(default_factory=dict)
    """A subset of the window's key values (as text)."""
    start: datetime
    values: dict[str, Any] = Field(default_factory=dict)
    """A subset of the window's values."""


class Case(_Strict):
    name: str
    until: str | None = None
    input: list[dict[str, Any]] = Field(min_length=1)
    expect: list[Expect]
    windows: dict[str, list[ExpectWindow]] = Field(default_factory=dict)
    """Per window name, every window it emits for the case's output events (the end of the input
    closes them all), oldest first."""


class CasesFile(_Strict):
    project: CaseProject = CaseProject()
    cases: list[Case]


class _StaticProjects:
    """resolve_project's resolver, answering one project for its token."""

    def __init__(self, project: Project) -> None:
        self._project = project

    async def resolve(self, token: str) -> Project | None:
        return self._project if token == self._project.api_token else None


@dataclass(frozen=True)
class CaseResult:
    name: str
    failures: list[str]


def _subset_problems(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        out = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out += _subset_problems(value, actual[key], f"{path}.{key}")
        return out
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


def _names_token(event: dict[str, Any]) -> bool:
    props = event.get("properties")
    return any(k in event for k in ("token", "$token", "api_key")) or (isinstance(props, dict) and "token" in props)


async def _run_case(topology: Topology, case: Case, project: Project) -> list[str]:
    stores: dict[str, MemoryKeyValue] = {}
    resources = StageResources.offline(projects=_StaticProjects(project),
                               kv=lambda namespace: stores.setdefault(namespace, MemoryKeyValue()))
    specs = topology.pipeline.stages
    if case.until is not None:
        names = [s.name for s in specs]
        if case.until not in names:
            return [f"until: no stage {case.until!r} (stages: {', '.join(names)})"]
        specs = specs[: names.index(case.until) + 1]
    if len(case.expect) != len(case.input):
        return [f"{len(case.input)} input events but {len(case.expect)} expectations"]
    runner = StageRunner(build_stages(specs, resources))
    ctx = CaptureContext(now=now_micros(), ip="127.0.0.1", sent_at_ms=None, engage=False)
    failures: list[str] = []
    person_ids: dict[int, str] = {}
    outputs: list[ProcessedEvent] = []  # what the pipeline sent on, for the windows
    try:
        await runner.start()  # as the worker does; a stage that cannot start ends the run (StageStartError)
        for i, (given, expect) in enumerate(zip(case.input, case.expect, strict=True)):
            try:
                batch = Batch([given], None, None, False)
                # the input's own token if it names one, else the cases' project
                token = request_token(batch) if _names_token(given) else project.api_token
                raw = to_raw_event(given, token, batch, ctx)
            except CaptureError as exc:
                failures.append(f"input[{i}]: the gateway would refuse it: {exc.message}")
                continue
            if raw is None:
                failures.append(f"input[{i}]: the gateway drops this event type")
                continue
            result = await runner.run([PipelineEvent.from_raw(raw, "test")])
            outcome = "dead_letter" if result.dead_lettered else "dropped" if result.dropped else "passed"
            wanted = "dead_letter" if expect.dead_letter else "dropped" if expect.dropped else "passed"
            if outcome != wanted:
                failures.append(f"expect[{i}]: expected {wanted}, got {outcome}")
                continue
            if outcome != "passed":
                continue
            event = result.passed[0]
            properties = orjson.loads(event.processed["properties"]) if event.processed else event.properties
            actual: dict[str, Any] = {"event": event.raw["event"], "distinct_id": event.raw["distinct_id"],
                                      "properties": properties}
            if event.processed is not None:
                outputs.append(event.processed)
                person_ids[i] = event.processed["person_id"]
                actual["person_properties"] = orjson.loads(event.processed["person_properties"])
            wanted_fields = expect.model_dump(exclude={"dropped", "dead_letter", "same_person_as"}, exclude_none=True)
            failures += _subset_problems(wanted_fields, actual, f"expect[{i}]")
            if expect.same_person_as is not None and person_ids.get(expect.same_person_as) != person_ids.get(i):
                failures.append(f"expect[{i}]: not the person of input[{expect.same_person_as}] "
                                f"({person_ids.get(i)} vs {person_ids.get(expect.same_person_as)})")
    finally:
        await runner.close()
    return failures + _window_problems(topology, case, outputs)


def _window_problems(topology: Topology, case: Case, outputs: list[ProcessedEvent]) -> list[str]:
    """Each window the case names, fed the case's output events in order, against its expectations."""
    specs = {w.name: w for w in topology.windows}
    failures: list[str] = []
    for name, expected in case.windows.items():
        spec = specs.get(name)
        if spec is None:
            failures.append(f"windows.{name}: no such window (windows: {', '.join(specs) or 'none'})")
            continue
        if spec.source != topology.pipeline.output:
            failures.append(f"windows.{name}: reads {spec.source}; cases test windows over the pipeline's output")
            continue
        windows = PartitionWindows(shape_of(spec), aggregations_of(spec))
        read = WindowInput(spec)
        for record in outputs:
            key, timestamp, fields = read.of(cast(dict[str, Any], record))
            windows.add(key, timestamp, nested(fields), 0.0)
        closed = sorted(windows.close() + windows.close_all(), key=lambda c: (c.start, c.key))
        if len(closed) != len(expected):
            failures.append(f"windows.{name}: expected {len(expected)} windows, got {len(closed)}: "
                            + ", ".join(f"{dict(zip(spec.key, c.key, strict=True))} at {_iso(c.start)}"
                                        for c in closed))
            continue
        for j, (want, got) in enumerate(zip(expected, closed, strict=True)):
            at = f"windows.{name}[{j}]"
            start = int(want.start.timestamp() * 1_000_000)
            if start != got.start:
                failures.append(f"{at}.start: expected {_iso(start)}, got {_iso(got.start)}")
            failures += _subset_problems(want.key, dict(zip(spec.key, got.key, strict=True)), f"{at}.key")
            failures += _subset_problems(want.values, got.values, f"{at}.values")
    return failures


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def load_cases(path: Path) -> CasesFile:
    try:
        doc = YAML(typ="safe").load(path.read_text())
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        return CasesFile.model_validate(doc)
    except ValidationError as exc:
        raise TopologyError([f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from exc


def run_cases(topology: Topology, cases: CasesFile) -> list[CaseResult]:
    project = Project(id=cases.project.id, name="test", api_token=cases.project.token)

    async def run_all() -> list[CaseResult]:
        return [CaseResult(case.name, await _run_case(topology, case, project)) for case in cases.cases]

    return asyncio.run(run_all())
