"""The component layer of topology validation, and building the components a topology names.

``headwater.runtime.topology`` checks a topology's fields and graph without knowing any stage,
sink or agent; the worker and the CLI add ``component_problems`` (``load_topology(path,
[component_problems])``): every stage type or plugin, sink type and agent handler exists, and
every stage and sink ``config`` passes its model, and the topics a sink publishes to
(``SinkConfig.published_topics``: a ``kafka`` sink's destination) are declared and written by
nothing else. The gateway never imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from headwater.errors import UnknownComponent
from headwater.runtime.suggest import did_you_mean
from headwater.runtime.topology import Loc, StageSpec, Topology
from sinks.registry import published_topics, resolve_sink
from streams.agents import load_handler
from streams.errors import AgentError
from streams.plugins.registry import plugin_stage_type
from streams.stages.base import Stage, StageResources
from streams.stages.registry import StageType, builtin_stage


def stage_type(spec: StageSpec) -> StageType:
    """The stage type ``spec`` names: a built-in, or ``type: plugin`` with its ``plugin``."""
    if spec.type == "plugin":
        if not spec.plugin:
            raise UnknownComponent("a plugin stage needs `plugin: <name or package.module:Class>`", "plugin")
        return plugin_stage_type(spec.plugin)
    if spec.plugin is not None:
        raise UnknownComponent(f"`plugin` goes with `type: plugin`, not with type {spec.type!r}", "plugin")
    return builtin_stage(spec.type)


def build_stages(specs: Sequence[StageSpec], resources: StageResources) -> list[tuple[Stage, StageSpec]]:
    """Each declared stage, built with its validated config, paired with its spec (for the runner)."""
    return [(stage_type(spec).build(spec.name, spec.config, resources), spec) for spec in specs]


def _config_message(model: type[BaseModel], error: ErrorDetails) -> str:
    if error["type"] != "extra_forbidden":
        return error["msg"]
    key = str(error["loc"][-1])
    return f"unknown key {key!r}{did_you_mean(key, model.model_fields)}"


def _config_problems(model: type[BaseModel], config: object, at: Loc) -> list[tuple[Loc, str]]:
    try:
        model.model_validate(config)
    except ValidationError as exc:
        return [((*at, *error["loc"]), _config_message(model, error)) for error in exc.errors()]
    return []


def _written_elsewhere(topology: Topology) -> set[str]:
    """The topics the capture, the pipeline and the windows write, or the pipeline reads."""
    pipeline = topology.pipeline
    capture = topology.capture
    written = {capture.topic, capture.overflow_topic, capture.historical_topic, *pipeline.sources, pipeline.output,
               *(topic for _, topic in pipeline.side_outputs())}
    for window in topology.windows:
        written |= {window.output, window.repartition(topology.app_id), window.changelog(topology.app_id)}
        if window.late_topic is not None:
            written.add(window.late_topic)
    return written


def _published_problems(topology: Topology, index: int) -> list[tuple[Loc, str]]:
    """A sink's destination topics: declared (so `headwater migrate` creates them), and not a topic
    something else writes or the sink reads."""
    sink = topology.sinks[index]
    problems: list[tuple[Loc, str]] = []
    for topic in published_topics(sink.type, sink.config):
        at: Loc = ("sinks", index, "config", "topic")
        if topic not in topology.topics:
            problems.append((at, f"unknown topic {topic!r}: declare the sink's destination under `topics:` "
                                 "(`headwater migrate` creates it), or set `bootstrap` for a topic on another "
                                 f"cluster (declared: {', '.join(sorted(topology.topics))})"))
        elif topic == sink.source:
            problems.append((at, f"topic {topic!r} is the sink's own source: that is a cycle"))
        elif topic in _written_elsewhere(topology):
            problems.append((at, f"topic {topic!r} is written or read by the capture, the pipeline or a window: "
                                 "give the sink's destination a topic of its own"))
    return problems


def component_problems(topology: Topology) -> list[tuple[Loc, str]]:
    """Unknown stage types, plugins, sink types and agent handlers; configs their models refuse."""
    problems: list[tuple[Loc, str]] = []
    for i, stage in enumerate(topology.pipeline.stages):
        try:
            kind = stage_type(stage)
        except UnknownComponent as exc:
            problems.append((("pipeline", "stages", i, exc.field), str(exc)))
            continue
        problems += _config_problems(kind.config, stage.config, ("pipeline", "stages", i, "config"))
    for i, sink in enumerate(topology.sinks):
        try:
            sink_kind = resolve_sink(sink.type)
        except UnknownComponent as exc:
            problems.append((("sinks", i, exc.field), str(exc)))
            continue
        found = _config_problems(sink_kind.config, sink.config, ("sinks", i, "config"))
        problems += found or _published_problems(topology, i)
    for i, agent in enumerate(topology.agents):
        try:
            load_handler(agent.handler)
        except AgentError as exc:
            problems.append((("agents", i, "handler"), str(exc)))
    return problems
