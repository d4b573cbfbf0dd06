"""The graph layer of validation, and the pictures of it (Mermaid, DOT, a text description)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from headwater.runtime.topology.model import Topology, WindowSpec

Loc = tuple[int | str, ...]
"""A path into the YAML document: keys and list indexes."""

Check = Callable[[Topology], list[tuple[Loc, str]]]
"""A validation layer: the problems it finds, each at its YAML path."""

Published = Mapping[str, Sequence[str]]
"""Sink name → the declared topics it publishes to (a ``kafka`` sink's destination). This package
knows no sink type, so the caller works it out (``sinks.registry.published_topics``); the
pictures draw a sink → topic edge for each."""


def graph_problems(topology: Topology) -> list[tuple[Loc, str]]:
    """Problems between the declared parts, each with its YAML path: unknown topics, duplicate
    names, stage order, partition counts. What stage, sink and agent types exist is not known
    here: ``streams.components`` checks that."""
    problems: list[tuple[Loc, str]] = []
    known = set(topology.topics)
    declared = ", ".join(sorted(known))
    pipeline = topology.pipeline
    refs: list[tuple[Loc, str]] = [
        (("capture", "topic"), topology.capture.topic),
        (("capture", "overflow_topic"), topology.capture.overflow_topic),
        (("capture", "historical_topic"), topology.capture.historical_topic),
        *((("pipeline", "sources", i), t) for i, t in enumerate(pipeline.sources)),
        (("pipeline", "output"), pipeline.output),
        (("pipeline", "dead_letter"), pipeline.dead_letter),
        *((("sinks", i, "source"), s.source) for i, s in enumerate(topology.sinks)),
    ]
    if pipeline.warnings is not None:
        refs.append((("pipeline", "warnings"), pipeline.warnings))
    if pipeline.persons is not None:
        refs += [(("pipeline", "persons", field), topic) for field, topic in pipeline.persons.topics()]
    for loc, topic in refs:
        if topic not in known:
            problems.append((loc, f"unknown topic {topic!r} (declared: {declared})"))
    if pipeline.output in pipeline.sources:
        problems.append((("pipeline", "output"), "the output topic is also a source: that is a cycle"))

    seen: set[str] = set()
    for i, stage in enumerate(pipeline.stages):
        if stage.name in seen:
            problems.append((("pipeline", "stages", i, "name"), f"duplicate stage name {stage.name!r}"))
        seen.add(stage.name)
    types = [s.type for s in pipeline.stages]
    if "persons" in types and pipeline.persons is None:
        problems.append((("pipeline",), "a `persons` stage needs `persons:` topics for the person rows it writes "
                                        "(persons, distinct_ids, overrides, groups)"))
    if "prepare" not in types or types[-1] != "prepare":
        problems.append((("pipeline", "stages"), "the last stage must be `prepare` (it shapes the output rows)"))
    if "resolve_project" not in types or types[0] != "resolve_project":
        problems.append((("pipeline", "stages"), "the first stage must be `resolve_project` (others need the project)"))

    capture = topology.capture
    event_topics = [capture.topic, capture.overflow_topic, capture.historical_topic, pipeline.output]
    agent_names: set[str] = set()
    for i, agent in enumerate(topology.agents):
        if agent.name in agent_names:
            problems.append((("agents", i, "name"), f"duplicate agent name {agent.name!r}"))
        agent_names.add(agent.name)
        if agent.source not in known:
            problems.append((("agents", i, "source"), f"unknown topic {agent.source!r} (declared: {declared})"))
        elif agent.source not in event_topics:
            problems.append((("agents", i, "source"), f"topic {agent.source!r} holds no events: an agent reads a "
                                                      f"capture topic or the pipeline's output "
                                                      f"({', '.join(dict.fromkeys(event_topics))})"))
    problems += _window_problems(topology, event_topics)
    names = [s.name for s in topology.sinks]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append((("sinks", i, "name"), f"duplicate sink name {name!r}"))
    source_partitions = {topology.topics[s].partitions for s in pipeline.sources if s in topology.topics}
    if len(source_partitions) > 1:
        problems.append((("pipeline", "sources"),
                         f"the sources have different partition counts {sorted(source_partitions)}: "
                         "one agent reads them all, so give them the same count"))
    return problems


def _window_problems(topology: Topology, event_topics: list[str]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    known = set(topology.topics)
    declared = ", ".join(sorted(known))
    names: set[str] = set()
    for i, window in enumerate(topology.windows):
        at: Loc = ("windows", i)
        if window.name in names:
            problems.append(((*at, "name"), f"duplicate window name {window.name!r}"))
        names.add(window.name)
        for field, topic in (("source", window.source), ("output", window.output), ("late_topic", window.late_topic)):
            if topic is not None and topic not in known:
                problems.append(((*at, field), f"unknown topic {topic!r} (declared: {declared})"))
        if window.source in known and window.source not in event_topics:
            readable = ", ".join(dict.fromkeys(event_topics))
            problems.append(((*at, "source"), f"topic {window.source!r} holds no events: a window reads a capture "
                                             f"topic or the pipeline's output ({readable})"))
        if window.output in (window.source, *event_topics):
            problems.append(((*at, "output"), f"topic {window.output!r} holds events: give the window's results a "
                                             "topic of their own"))
        if window.size_seconds % window.step:
            problems.append(((*at, "step_seconds"), f"the step ({window.step}s) must divide the size "
                                                   f"({window.size_seconds}s)"))
        aggregated: set[str] = set()
        for j, agg in enumerate(window.aggregations):
            if agg.name in aggregated:
                problems.append(((*at, "aggregations", j, "name"), f"duplicate aggregation name {agg.name!r}"))
            aggregated.add(agg.name)
            if agg.function != "count" and not agg.field:
                problems.append(((*at, "aggregations", j), f"`{agg.function}` needs a `field` (e.g. distinct_id, "
                                                           "properties.price)"))
    return problems


def _window_label(window: WindowSpec) -> str:
    shape = f"{window.size_seconds}s" if window.step == window.size_seconds else \
        f"{window.size_seconds}s every {window.step}s"
    return f"window {window.name}: {shape} by {', '.join(window.key)}"


def _published(topology: Topology, published: Published | None, sink: str) -> list[str]:
    """The declared topics ``sink`` publishes to (an undeclared one is a validation problem, not drawn)."""
    return [t for t in (published or {}).get(sink, ()) if t in topology.topics]


def _id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def mermaid(topology: Topology, published: Published | None = None) -> str:
    """A Mermaid flowchart: topics as cylinders, stages as boxes, sinks as hexagons."""
    pipeline = topology.pipeline
    lines = ["flowchart LR", "  gateway([capture gateway])"]
    for name in topology.topics:
        lines.append(f"  {_id('t_' + name)}[({name})]")
    for topic in (topology.capture.topic, topology.capture.overflow_topic, topology.capture.historical_topic):
        lines.append(f"  gateway --> {_id('t_' + topic)}")
    lines.append("  subgraph pipeline")
    for stage in pipeline.stages:
        label = f"{stage.name}: {stage.plugin}" if stage.plugin else f"{stage.name} ({stage.type})"
        lines.append(f"    {_id('s_' + stage.name)}[\"{label}\"]")
    lines.append("  end")
    first, last = _id("s_" + pipeline.stages[0].name), _id("s_" + pipeline.stages[-1].name)
    for source in pipeline.sources:
        lines.append(f"  {_id('t_' + source)} --> {first}")
    for a, b in zip(pipeline.stages, pipeline.stages[1:], strict=False):
        lines.append(f"  {_id('s_' + a.name)} --> {_id('s_' + b.name)}")
    lines.append(f"  {last} --> {_id('t_' + pipeline.output)}")
    for label, topic in pipeline.side_outputs():
        lines.append(f"  {first} -. {label} .-> {_id('t_' + topic)}")
    for sink in topology.sinks:
        lines.append(f"  {_id('k_' + sink.name)}{{{{\"{sink.name} ({sink.type})\"}}}}")
        lines.append(f"  {_id('t_' + sink.source)} --> {_id('k_' + sink.name)}")
        for topic in _published(topology, published, sink.name):
            lines.append(f"  {_id('k_' + sink.name)} --> {_id('t_' + topic)}")
    for agent in topology.agents:
        lines.append(f"  {_id('a_' + agent.name)}[/\"agent {agent.name}\"/]")
        lines.append(f"  {_id('t_' + agent.source)} --> {_id('a_' + agent.name)}")
    for window in topology.windows:
        lines.append(f"  {_id('w_' + window.name)}[/\"{_window_label(window)}\"\\]")
        lines.append(f"  {_id('t_' + window.source)} --> {_id('w_' + window.name)}")
        lines.append(f"  {_id('w_' + window.name)} --> {_id('t_' + window.output)}")
        if window.late_topic is not None:
            lines.append(f"  {_id('w_' + window.name)} -. late .-> {_id('t_' + window.late_topic)}")
    return "\n".join(lines) + "\n"


def dot(topology: Topology, published: Published | None = None) -> str:
    """The same graph in Graphviz DOT."""
    pipeline = topology.pipeline
    lines = ["digraph headwater {", "  rankdir=LR;", '  gateway [shape=oval, label="capture gateway"];']
    for name in topology.topics:
        lines.append(f'  "{name}" [shape=cylinder];')
    for stage in pipeline.stages:
        label = f"{stage.name}: {stage.plugin}" if stage.plugin else f"{stage.name} ({stage.type})"
        lines.append(f'  "stage:{stage.name}" [shape=box, label="{label}"];')
    for sink in topology.sinks:
        lines.append(f'  "sink:{sink.name}" [shape=hexagon, label="{sink.name} ({sink.type})"];')
    for topic in (topology.capture.topic, topology.capture.overflow_topic, topology.capture.historical_topic):
        lines.append(f'  gateway -> "{topic}";')
    for source in pipeline.sources:
        lines.append(f'  "{source}" -> "stage:{pipeline.stages[0].name}";')
    for a, b in zip(pipeline.stages, pipeline.stages[1:], strict=False):
        lines.append(f'  "stage:{a.name}" -> "stage:{b.name}";')
    lines.append(f'  "stage:{pipeline.stages[-1].name}" -> "{pipeline.output}";')
    first = f'"stage:{pipeline.stages[0].name}"'
    for label, topic in pipeline.side_outputs():
        lines.append(f'  {first} -> "{topic}" [style=dashed, label="{label}"];')
    for sink in topology.sinks:
        lines.append(f'  "{sink.source}" -> "sink:{sink.name}";')
        for topic in _published(topology, published, sink.name):
            lines.append(f'  "sink:{sink.name}" -> "{topic}";')
    for agent in topology.agents:
        lines.append(f'  "agent:{agent.name}" [shape=parallelogram, label="agent {agent.name}"];')
        lines.append(f'  "{agent.source}" -> "agent:{agent.name}";')
    for window in topology.windows:
        lines.append(f'  "window:{window.name}" [shape=trapezium, label="{_window_label(window)}"];')
        lines.append(f'  "{window.source}" -> "window:{window.name}";')
        lines.append(f'  "window:{window.name}" -> "{window.output}";')
        if window.late_topic is not None:
            lines.append(f'  "window:{window.name}" -> "{window.late_topic}" [style=dashed, label="late"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def describe(topology: Topology, published: Published | None = None) -> str:
    """A text description in the spirit of Kafka Streams' ``Topology.describe()``."""
    pipeline = topology.pipeline
    out = [f"Topology: {topology.app_id}", "  Sub-topology: 0 (agent: pipeline)",
           f"    Source: sources (topics: [{', '.join(pipeline.sources)}])",
           f"      --> {pipeline.stages[0].name}"]
    for i, stage in enumerate(pipeline.stages):
        after = pipeline.stages[i + 1].name if i + 1 < len(pipeline.stages) else "output"
        before = pipeline.stages[i - 1].name if i else "sources"
        kind = f"plugin {stage.plugin}" if stage.plugin else stage.type
        out += [f"    Processor: {stage.name} ({kind}, on_error={stage.on_error}, timeout={stage.timeout_seconds}s)",
                f"      --> {after}", f"      <-- {before}"]
    out += [f"    Sink: output (topic: {pipeline.output})", f"      <-- {pipeline.stages[-1].name}"]
    out += [f"    Sink: {label.replace(' ', '_')} (topic: {topic})" for label, topic in pipeline.side_outputs()]
    for n, sink in enumerate(topology.sinks, start=1):
        out += [f"  Sub-topology: {n} (agent: sink_{sink.name})",
                f"    Source: {sink.source} (topics: [{sink.source}])", f"      --> {sink.name}",
                f"    Sink: {sink.name} ({sink.type}, "
                f"batch: {sink.batch.max_events} events / {sink.batch.max_seconds}s)"]
        out += [f"      --> topic: {topic}" for topic in _published(topology, published, sink.name)]
    for n, agent in enumerate(topology.agents, start=len(topology.sinks) + 1):
        out += [f"  Sub-topology: {n} (agent: agent_{agent.name})",
                f"    Source: {agent.source} (topics: [{agent.source}])", f"      --> {agent.name}",
                f"    Processor: {agent.name} (handler {agent.handler})"]
    for n, window in enumerate(topology.windows, start=len(topology.sinks) + len(topology.agents) + 1):
        shape = "tumbling" if window.step == window.size_seconds else f"hopping every {window.step}s"
        values = ", ".join(f"{a.name}={a.function}({a.field or ''})" for a in window.aggregations)
        out += [f"  Sub-topology: {n} (window: window_{window.name})",
                f"    Source: {window.source} (topics: [{window.source}])", f"      --> {window.name}",
                f"    Processor: {window.name} ({window.size_seconds}s {shape}, grace {window.grace_seconds}s, "
                f"idle {window.idle_seconds}s; key: {', '.join(window.key)}; {values})",
                f"      state: {window.changelog(topology.app_id)} (changelog)",
                f"    Sink: {window.output}" + (f", late: {window.late_topic}" if window.late_topic else "")]
    return "\n".join(out) + "\n"
