"""``topology.yaml``: the user's declaration of topics, stages and sinks.

Loaded strictly (unknown keys are errors), validated before anything connects, and every
problem is reported as ``file:line:col path: message``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from streams.errors import TopologyError

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicSpec(_Strict):
    """A Kafka topic the pipeline reads or writes; ``headwater migrate`` creates it."""

    partitions: int = Field(4, ge=1, le=10_000, description="Number of partitions (the unit of parallelism).")
    replication_factor: int = Field(1, ge=1, description="Copies of each partition.")
    retention_hours: float | None = Field(168, gt=0, description="How long messages are kept; null keeps them forever.")
    compacted: bool = Field(False, description="Log compaction (keep the newest message per key).")


class CaptureSpec(_Strict):
    """Where the gateway writes captured events."""

    topic: Name = Field("events_raw", description="Live events, partitioned by token:distinct_id.")
    overflow_topic: Name = Field("events_overflow", description="Events of hot keys, spread without a key.")
    historical_topic: Name = Field("events_historical", description="historical_migration imports.")


class StageSpec(_Strict):
    """One step of the pipeline, run on every event in order."""

    name: Name = Field(description="Unique name of this stage (metric label, DLQ header).")
    type: Literal["resolve_project", "prepare"] = Field(description="Which built-in stage to run.")
    on_error: Literal["retry", "dead_letter", "drop", "stop"] = Field(
        "dead_letter", description="What an error in this stage does to the event."
    )


class PipelineSpec(_Strict):
    """Raw events in, processed events out."""

    sources: list[Name] = Field(description="Topics of raw event envelopes, in priority order.")
    stages: list[StageSpec] = Field(min_length=1)
    output: Name = Field(description="Topic the processed event envelopes go to.")
    dead_letter: Name = Field("events_dlq", description="Topic for events a stage dead-letters.")


class BatchSpec(_Strict):
    max_messages: int = Field(200, ge=1, description="Kafka messages (envelopes) per sink batch at most.")
    max_seconds: float = Field(1.0, gt=0, description="How long a batch may wait to fill before it is flushed.")


class ClickHouseSinkSpec(_Strict):
    """Writes processed events into ClickHouse's ``events`` table."""

    name: Name
    type: Literal["clickhouse"]
    source: Name = Field(description="Topic of processed event envelopes to read.")
    table: str = Field("events", description="Target table.")
    batch: BatchSpec = BatchSpec()


SinkSpec = Annotated[ClickHouseSinkSpec, Field(discriminator="type")]


class Topology(_Strict):
    """The whole pipeline."""

    version: Literal[1] = Field(1, description="Format version of this file.")
    app_id: Name = Field("headwater", description="Faust app id: the consumer group and state prefix.")
    topics: dict[Name, TopicSpec] = Field(description="Every Kafka topic the pipeline uses, by name.")
    capture: CaptureSpec = Field(CaptureSpec(), description="Where the gateway writes.")
    pipeline: PipelineSpec = Field(description="Raw events in, processed events out.")
    sinks: list[SinkSpec] = Field(default_factory=list, description="Where processed events are written.")

    def graph_problems(self) -> list[tuple[tuple[int | str, ...], str]]:
        """Problems between components (unknown topics, duplicate names), each with its YAML path."""
        known = set(self.topics)
        declared = ", ".join(sorted(known))
        problems: list[tuple[tuple[int | str, ...], str]] = []
        refs: list[tuple[tuple[int | str, ...], str]] = [
            (("capture", "topic"), self.capture.topic),
            (("capture", "overflow_topic"), self.capture.overflow_topic),
            (("capture", "historical_topic"), self.capture.historical_topic),
            *((("pipeline", "sources", i), t) for i, t in enumerate(self.pipeline.sources)),
            (("pipeline", "output"), self.pipeline.output),
            (("pipeline", "dead_letter"), self.pipeline.dead_letter),
            *((("sinks", i, "source"), s.source) for i, s in enumerate(self.sinks)),
        ]
        for loc, topic in refs:
            if topic not in known:
                problems.append((loc, f"unknown topic {topic!r} (declared: {declared})"))
        seen: set[str] = set()
        for i, stage in enumerate(self.pipeline.stages):
            if stage.name in seen:
                problems.append((("pipeline", "stages", i, "name"), f"duplicate stage name {stage.name!r}"))
            seen.add(stage.name)
        return problems


def _locate(node: Any, loc: tuple[int | str, ...]) -> tuple[int, int]:
    """Line and column (1-based) of the deepest YAML node on ``loc`` that exists."""
    line, col = 0, 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        else:
            break
    return line + 1, col + 1


_UNION_TAGS = {"clickhouse"}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS:
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top)"


def load_topology(path: Path) -> Topology:
    """Parse and validate ``path``; raise ``TopologyError`` listing every problem."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise TopologyError([f"{where} {exc.problem}"]) from exc
    if not isinstance(doc, dict):
        raise TopologyError([f"{path}:1:1 the topology must be a mapping with topics, pipeline and sinks"])
    try:
        topology = Topology.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}"
            elif error["type"] == "union_tag_invalid":
                loc = (*loc, "type")
                message = f"unknown type {error['input'].get('type')!r} (known: {', '.join(sorted(_UNION_TAGS))})"
            problems.append(_problem(path, doc, loc, message))
        raise TopologyError(problems) from exc
    graph = topology.graph_problems()
    if graph:
        raise TopologyError([_problem(path, doc, loc, message) for loc, message in graph])
    return topology


def _problem(path: Path, doc: Any, loc: tuple[int | str, ...], message: str) -> str:
    line, col = _locate(doc, loc)
    return f"{path}:{line}:{col} {_path(loc)}: {message}"
