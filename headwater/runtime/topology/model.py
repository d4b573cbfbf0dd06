"""The topology's models: strict (unknown keys are errors), frozen, documented field by field.

Field descriptions generate ``docs/topology.md`` and the JSON Schema editors use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=200)]
Policy = Literal["retry", "dead_letter", "drop", "stop"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicSpec(Strict):
    """A Kafka topic the pipeline reads or writes; ``headwater migrate`` creates it."""

    partitions: int = Field(4, ge=1, le=10_000, description="Number of partitions (the unit of parallelism).")
    replication_factor: int | None = Field(
        None, ge=1, description="Copies of each partition; unset: `min(3, brokers)` of the cluster `headwater migrate` "
        "creates the topic in. `min.insync.replicas` is one fewer, at most 2, at least 1.")
    retention_hours: float | None = Field(168, gt=0, description="How long messages are kept; null keeps them forever.")
    compacted: bool = Field(False, description="Log compaction (keep the newest message per key).")


class CaptureSpec(Strict):
    """Where the gateway writes captured events."""

    topic: Name = Field("events_raw", description="Live events, partitioned by token:distinct_id.")
    overflow_topic: Name = Field("events_overflow", description="Events of hot keys, spread without a key.")
    historical_topic: Name = Field("events_historical", description="historical_migration imports.")


class StageSpec(Strict):
    """One step of the pipeline, run on every event in order.

    ``type`` is a built-in stage (``headwater topology stages`` lists them) or ``plugin``;
    ``config`` is checked against that stage's (or plugin's) config model before anything runs.
    """

    name: Name = Field(description="Unique name of this stage (metric label, DLQ header).")
    type: Name = Field(description="A built-in stage type, or `plugin`.")
    plugin: str | None = Field(
        None, description="With type plugin: a registered plugin name, or an import path `package.module:Class`."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="The stage's settings (see its reference).")
    on_error: Policy = Field("dead_letter", description="What an error in this stage does to the event.")
    timeout_seconds: float = Field(5.0, gt=0, description="How long one call of this stage (one batch) may take.")


class PersonTopics(Strict):
    """Where the ``persons`` stage sends the rows of ClickHouse's person and group tables (a sink reads each)."""

    persons: Name = Field("persons", description="Topic of person rows (ClickHouse `person`).")
    distinct_ids: Name = Field(
        "person_distinct_ids", description="Topic of distinct id → person rows (ClickHouse `person_distinct_id2`).")
    overrides: Name = Field(
        "person_distinct_id_overrides",
        description="Topic of the distinct ids a merge moved (ClickHouse `person_distinct_id_overrides`).")
    groups: Name = Field("groups", description="Topic of group rows from `$groupidentify` (ClickHouse `groups`).")

    def topics(self) -> list[tuple[str, str]]:
        """``(field, topic)`` of each."""
        return [("persons", self.persons), ("distinct_ids", self.distinct_ids), ("overrides", self.overrides),
                ("groups", self.groups)]


class PipelineSpec(Strict):
    """Raw events in, processed events out."""

    sources: list[Name] = Field(description="Topics of raw event envelopes, in priority order.")
    stages: list[StageSpec] = Field(min_length=1, description="The stages, in the order every event runs them.")
    output: Name = Field(description="Topic the processed event envelopes go to.")
    dead_letter: Name = Field("events_dlq", description="Topic for events a stage dead-letters.")
    warnings: Name | None = Field(
        "ingestion_warnings",
        description="Topic for ingestion warnings (at most one per project, type and key an hour).",
    )
    persons: PersonTopics | None = Field(
        None, description="Topics for the person rows the `persons` stage writes; needed with a `persons` stage.")

    def side_outputs(self) -> list[tuple[str, str]]:
        """``(label, topic)`` of what the stages send besides the output: dead letters, warnings, person rows."""
        sides = [("dead letters", self.dead_letter)]
        if self.warnings is not None:
            sides.append(("warnings", self.warnings))
        if self.persons is not None:
            sides += [(f"person {label.replace('_', ' ')}", topic) for label, topic in self.persons.topics()]
        return sides


class BatchSpec(Strict):
    """How a sink batches."""

    max_events: int = Field(
        20_000, ge=1, description="Events per sink batch at most (counted from the envelopes' `count` headers); "
        "bounds the worker's memory whatever the envelope size.")
    max_seconds: float = Field(1.0, gt=0, description="How long a batch may wait to fill before it is flushed.")


class SinkSpec(Strict):
    """Writes the records of a topic's envelopes somewhere (``headwater topology sinks`` lists the types).

    ``config`` is checked against the sink type's config model before anything runs.
    """

    name: Name = Field(description="Unique name of this sink (metric label, consumer `sink_<name>`).")
    type: Name = Field(description="A registered sink type, e.g. `clickhouse`.")
    source: Name = Field(description="Topic to read (envelopes of processed events, warnings, ...).")
    batch: BatchSpec = Field(BatchSpec(), description="Batching.")
    config: dict[str, Any] = Field(default_factory=dict, description="The sink's settings (see its reference).")


class AgentSpec(Strict):
    """A plugin agent: your own async function over a topic's events (see docs/plugins.md)."""

    name: Name = Field(
        description="Unique name of this agent; it reads in its own consumer group, `<app_id>-agent_<name>`.")
    source: Name = Field(description="Topic whose events it reads: a capture topic or the pipeline's output.")
    handler: str = Field(pattern=r"^[\w.]+:\w+$", description="`package.module:function`.")
    on_error: Literal["stop", "dead_letter"] = Field(
        "stop", description="When the handler raises: `stop` the worker, or `dead_letter` the envelope it was in "
        "and go on with the next.")
    start: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new agent starts (one whose consumer group has no committed offset): "
        "`earliest`, everything the topic still holds, or `latest`, only events that arrive after it starts. "
        "Later starts go on from the group's offsets.")


class AggregationSpec(Strict):
    """One value a window computes over its events."""

    name: Name = Field(description="The value's name in the window's results, e.g. `events`, `buyers`, `revenue`.")
    function: Literal["count", "uniq", "sum", "min", "max"] = Field(
        description="`count` events; `uniq` distinct values of `field`; `sum`, `min`, `max` of a numeric `field` "
        "(values that are not numbers are skipped, and counted in the result's `skipped`).")
    field: str | None = Field(
        None, description="A field path, for every function but `count`: `distinct_id`, `properties.price`, ...")


class WindowSpec(Strict):
    """An event-time window over a topic's events, emitted once when it closes (see docs/windows.md).

    A window ``[start, start + size)`` closes when its partition's watermark (the newest event
    time it has seen) passes ``end + grace``; an event whose windows have all closed is late.
    """

    name: Name = Field(
        description="Unique name of this window; it reads in its own consumer group, `<app_id>-window_<name>`.")
    source: Name = Field(description="Topic whose events it reads: a capture topic or the pipeline's output.")
    key: list[str] = Field(
        min_length=1, description="Field paths the windows are kept apart by: `team_id`, `event`, `properties.$os`.")
    size_seconds: int = Field(gt=0, description="Length of a window.")
    step_seconds: int | None = Field(
        None, gt=0, description="How far consecutive windows start apart: `size_seconds` (the default) makes "
        "tumbling windows, less makes hopping ones (it must divide `size_seconds`).")
    grace_seconds: int = Field(60, ge=0, description="How long after its end a window still takes late events.")
    idle_seconds: int | None = Field(
        30, gt=0, description="A partition with no event for this long (wall time) moves its watermark on by the "
        "time that passed, so its windows close; null waits for events forever.")
    aggregations: list[AggregationSpec] = Field(min_length=1, description="What each window computes.")
    output: Name = Field(description="Topic the closed windows go to (`window_results` envelopes, keyed "
                                     "`<name>:<key>:<start>`).")
    late_topic: Name | None = Field(
        None, description="Topic late events go to (one JSON message each, keyed by uuid); null only counts them.")

    @property
    def step(self) -> int:
        return self.step_seconds or self.size_seconds

    def changelog(self, app_id: str) -> str:
        """The compacted topic holding this window's state, one message per partition."""
        return f"{app_id}-window-{self.name}-changelog"

    def repartition(self, app_id: str) -> str:
        """The topic the window's events are re-keyed to, so that one partition holds all of a key."""
        return f"{app_id}-window-{self.name}-repartition"


class Topology(Strict):
    """The whole pipeline."""

    version: Literal[1] = Field(1, description="Format version of this file.")
    app_id: Name = Field("headwater", description="Faust app id: the consumer group and state prefix.")
    topics: dict[Name, TopicSpec] = Field(description="Every Kafka topic the pipeline uses, by name.")
    capture: CaptureSpec = Field(CaptureSpec(), description="Where the gateway writes.")
    pipeline: PipelineSpec = Field(description="Raw events in, processed events out.")
    sinks: list[SinkSpec] = Field(default_factory=list, description="Where processed events are written.")
    agents: list[AgentSpec] = Field(default_factory=list, description="Your own agents on declared topics.")
    windows: list[WindowSpec] = Field(default_factory=list, description="Event-time windows over declared topics.")

    def rekeyed_by_pipeline(self, window: WindowSpec) -> bool:
        """Whether the pipeline re-keys ``window`` (its source is the pipeline's output), in its own
        checkpoint; any other window has a re-key consumer of its own (``streams.windows``)."""
        return window.source == self.pipeline.output

    def kafka_topics(self) -> dict[str, TopicSpec]:
        """Every topic to create: the declared ones, and each window's repartition topic (as many
        partitions as its source, kept a day) and changelog (as many, compacted, kept forever)."""
        topics = dict(self.topics)
        for window in self.windows:
            source = self.topics.get(window.source) or TopicSpec()
            size = {"partitions": source.partitions, "replication_factor": source.replication_factor}
            topics.setdefault(window.repartition(self.app_id), TopicSpec(**size, retention_hours=24))
            topics.setdefault(window.changelog(self.app_id), TopicSpec(**size, retention_hours=None, compacted=True))
        return topics
