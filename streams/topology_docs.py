"""The topology reference (docs/topology.md), generated from the models' field descriptions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from streams.topology import BatchSpec, CaptureSpec, ClickHouseSinkSpec, PipelineSpec, StageSpec, TopicSpec, Topology

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", Topology),
    ("`topics.<name>`", TopicSpec),
    ("`capture`", CaptureSpec),
    ("`pipeline`", PipelineSpec),
    ("`pipeline.stages[]`", StageSpec),
    ("`sinks[]` with `type: clickhouse`", ClickHouseSinkSpec),
    ("`sinks[].batch`", BatchSpec),
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


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "")
    for noise in ("<class '", "'>", "streams.topology."):
        text = text.replace(noise, "")
    return _strip_annotated(text).replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value: Any = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{value!r}`" if value not in ([], {}) else "empty"


def render() -> str:
    lines = [
        "# topology.yaml reference",
        "",
        "Generated from the models in `streams/topology.py` (`python -m streams.topology_docs > docs/topology.md`).",
        "Unknown keys are errors; each problem is reported as `file:line:col path: message`.",
        "",
    ]
    for title, model in SECTIONS:
        lines += [f"## {title}", "", (model.__doc__ or "").strip(), "",
                  "| key | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{name}` | `{_type(field)}` | {_default(field)} | {field.description or ''} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
