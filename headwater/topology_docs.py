"""The topology reference (docs/topology.md), generated from the models' field descriptions."""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from headwater.runtime.topology.model import (
    AgentSpec,
    AggregationSpec,
    BatchSpec,
    CaptureSpec,
    PersonTopics,
    PipelineSpec,
    SinkSpec,
    StageSpec,
    TopicSpec,
    Topology,
    WindowSpec,
)
from sinks.registry import sink_types
from streams.stages.registry import stage_types

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", Topology),
    ("`topics.<name>`", TopicSpec),
    ("`capture`", CaptureSpec),
    ("`pipeline`", PipelineSpec),
    ("`pipeline.stages[]`", StageSpec),
    ("`pipeline.persons`", PersonTopics),
    ("`sinks[]`", SinkSpec),
    ("`sinks[].batch`", BatchSpec),
    ("`agents[]`", AgentSpec),
    ("`windows[]`", WindowSpec),
    ("`windows[].aggregations[]`", AggregationSpec),
]


def _strip_annotated(text: str) -> str:
    """``Annotated[X, FieldInfo(...)]`` → ``X`` (the metadata is in the description)."""
    start = text.find("Annotated[")
    while start != -1:
        depth, i = 0, start + len("Annotated[")
        inner_start = i
        comma = -1
        while i < len(text):
            ch = text[i]
            if ch in "[(":
                depth += 1
            elif ch in "])":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "," and depth == 0 and comma == -1:
                comma = i
            i += 1
        text = text[:start] + text[inner_start:comma] + text[i + 1:]
        start = text.find("Annotated[")
    return text


def markdown(docstring: str | None) -> str:
    """A docstring as Markdown paragraphs: dedented, each paragraph on one line (an indented line
    would be a code block), and RST's double backticks as Markdown's single ones."""
    paragraphs = inspect.cleandoc(docstring or "").split("\n\n")
    text = "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs if p.strip())
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "")
    for noise in ("<class '", "'>", "headwater.runtime.topology.model.", "headwater.runtime.topology."):
        text = text.replace(noise, "")
    text = re.sub(r"Optional\[(\w+)\]", r"\1 | None", _strip_annotated(text))
    return text.replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value: Any = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{value!r}`" if value not in ([], {}) else "empty"


def json_schema() -> dict[str, Any]:
    """JSON Schema of topology.yaml for editors (YAML language servers read it)."""
    document = Topology.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "Headwater topology.yaml"
    return document


def render() -> str:
    lines = [
        "# topology.yaml reference",
        "",
        "Generated from the models (`python -m headwater.topology_docs > docs/topology.md`).",
        "Unknown keys are errors; each problem is reported as `file:line:col path: message`, in plain words "
        "(\"did you mean\" for a misspelt key or type). `headwater topology init` writes the default topology.",
        "",
        "String values may name environment variables: `${NAME}`, or `${NAME:-default}` when it is unset or "
        "empty (`$${` is a literal `${`). They are substituted before validation, and an unset variable "
        "without a default is reported at its value as `file:line:col path: message`. Quote such values "
        "inside `{…}` flow mappings. Every process that loads the topology (gateway, worker, CLI) needs "
        "the variables; use them for secrets such as a plugin's salt.",
        "",
    ]
    for title, model in SECTIONS:
        lines += [f"## {title}", "", markdown(model.__doc__), "",
                  "| key | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{name}` | `{_type(field)}` | {_default(field)} | {field.description or ''} |")
        lines.append("")
    lines += ["## Stage types", "", "`type:` of a stage; `config:` takes the keys listed for it.", ""]
    for name, kind in sorted(stage_types().items()):
        lines += _component(name, kind.summary, kind.config)
    lines += ["### `plugin`", "",
              "Runs a plugin: `plugin:` names a built-in plugin, one registered under the `headwater.plugins` "
              "entry point group, or an import path `package.module:Class`; `config:` is checked against the "
              "plugin's `Config` model. See [plugins.md](plugins.md).", ""]
    lines += ["## Sink types", "", "`type:` of a sink; `config:` takes the keys listed for it.", ""]
    for name, sink in sorted(sink_types().items()):
        lines += _component(name, sink.summary, sink.config)
    return "\n".join(lines)


def _component(name: str, summary: str, config: type[BaseModel]) -> list[str]:
    lines = [f"### `{name}`", "", summary, ""]
    fields = config.model_fields
    if fields:
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        lines += [f"| `{n}` | `{_type(f)}` | {_default(f)} | {f.description or ''} |" for n, f in fields.items()]
    else:
        lines.append("No settings.")
    lines.append("")
    return lines


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:] == ["--schema"]:
        print(json.dumps(json_schema(), indent=2))
    else:
        print(render())
