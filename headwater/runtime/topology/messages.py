"""Plain messages for the mistakes people make in ``topology.yaml``.

The YAML parser and pydantic describe what *they* saw (``expected <block end>, but found
'?'``, ``Input should be a valid dictionary or instance of TopicSpec``); a person needs what
is wrong, where, and what was probably meant. ``yaml_problem`` translates a parser error
using the lines around it (indentation is the usual cause), ``field_problems`` translates the
model's validation errors, adding "did you mean" for misspelt keys and values. Anything not
recognised keeps the original wording, so no message is lost.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError

from headwater.runtime.suggest import closest, did_you_mean
from headwater.runtime.topology.graph import Loc
from headwater.runtime.topology.model import Topology

# --- the parser ------------------------------------------------------------------------------

_ITEM = re.compile(r"^(\s*)((?:-\s+)*)")
_KEY = re.compile(r"([^\s#'\"{\[][^:#]*?):(?:\s|$)")


def _content_lines(lines: Sequence[str], before: int) -> list[int]:
    """Indexes of the lines before ``before`` that hold YAML (not blank, not only a comment), nearest first."""
    return [i for i in range(before - 1, -1, -1) if lines[i].strip() and not lines[i].lstrip().startswith("#")]


def _key_at(line: str) -> tuple[int, str] | None:
    """The 0-based column and text of the mapping key a line starts with (after any ``- ``), if it has one."""
    prefix = _ITEM.match(line)
    start = prefix.end() if prefix else 0
    key = _KEY.match(line, start)
    return (start, key[1].strip()) if key else None


def yaml_problem(text: str, exc: MarkedYAMLError) -> tuple[int, int, str]:
    """(line, column, message) for a YAML syntax error, 1-based, in words a person can act on."""
    mark = exc.problem_mark
    if mark is None:
        return 1, 1, str(exc.problem or exc)
    lines = text.splitlines()
    line, col = mark.line, mark.column
    problem = exc.problem or ""
    here = lines[line] if line < len(lines) else ""
    context_mark = exc.context_mark
    opened = f"line {context_mark.line + 1}, column {context_mark.column + 1}" if context_mark else "above"

    if "duplicate key" in problem:
        found = re.search(r'duplicate key "([^"]*)"', problem)
        key = found[1] if found else "this key"
        return line + 1, col + 1, f"`{key}` appears twice in one mapping: keep one of them"
    if "'\\t'" in problem or "\t" in problem:
        return line + 1, col + 1, "a tab: YAML indents with spaces only, replace the tab with spaces"
    if problem == "mapping values are not allowed here":
        own = _key_at(here)
        before = _content_lines(lines, line)
        if own is not None and own[0] < col and before:
            above = _key_at(lines[before[0]])
            if above is not None and own[0] > above[0]:
                return line + 1, own[0] + 1, (
                    f"`{own[1]}:` is indented more than `{above[1]}:` on line {before[0] + 1} (column {own[0] + 1}, "
                    f"not {above[0] + 1}), so YAML reads it as part of `{above[1]}`'s value; keys of one mapping "
                    f"start in the same column: move `{own[1]}:` to column {above[0] + 1}")
        return line + 1, col + 1, (
            "a second `: ` on one line: a value that contains `: ` must be quoted (`key: \"a: b\"`)")
    if problem.startswith("expected <block end>"):
        own_col = len(here) - len(here.lstrip())
        own = _key_at(here)
        what = f"`{own[1]}:`" if own else "this line"
        before = _content_lines(lines, line)
        above = _key_at(lines[before[0]]) if before else None
        if above is not None and own_col < above[0]:
            return line + 1, own_col + 1, (
                f"{what} is indented less than `{above[1]}:` on line {before[0] + 1} (column {own_col + 1}, "
                f"not {above[0] + 1}), so it belongs to no mapping above it; if it goes with `{above[1]}`, "
                f"move it to column {above[0] + 1}")
        return line + 1, own_col + 1, (
            f"{what} does not line up with the block that starts at {opened}: keys of one mapping, and the "
            "`-` items of one list, start in the same column")
    if exc.context and "flow sequence" in exc.context:
        return line + 1, col + 1, f"the `[` at {opened} is not closed: add `]`, or a `,` between items"
    if exc.context and "flow mapping" in exc.context:
        return line + 1, col + 1, f"the `{{` at {opened} is not closed: add `}}`, or a `,` between entries"
    if exc.context and "quoted scalar" in exc.context:
        return line + 1, col + 1, f"the quote at {opened} is never closed"
    return line + 1, col + 1, problem


# --- the models ------------------------------------------------------------------------------

def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``; ``Annotated[X, …]`` → ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def model_at(loc: Loc) -> type[BaseModel] | None:
    """The model of the topology that validates the mapping at ``loc``, if one does."""
    node: Any = Topology
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            if not isinstance(part, str) or part not in node.model_fields:
                return None
            node = node.model_fields[part].annotation
        elif typing.get_origin(node) in (list, dict):
            node = typing.get_args(node)[-1]
        else:
            return None
    node = _unwrap(node)
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


def _noun(model: type[BaseModel]) -> str:
    """``TopicSpec`` → ``topic``: what a person calls a thing the model describes."""
    return "the file" if model is Topology else model.__name__.removesuffix("Spec").lower()


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _previous_key(doc: Any, loc: Loc) -> tuple[str, int] | None:
    """The key before ``loc[-1]`` in its mapping, and its 1-based line."""
    node = doc
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    if not isinstance(node, CommentedMap):
        return None
    keys = list(node)
    at = keys.index(loc[-1]) if loc[-1] in keys else 0
    if at == 0:
        return None
    return str(keys[at - 1]), node.lc.key(keys[at - 1])[0] + 1


def _not_a_mapping(error: ErrorDetails, doc: Any) -> str:
    loc = tuple(error["loc"])
    model = model_at(loc)
    noun = _noun(model) if model else "this"
    key = loc[-1] if loc else "(top)"
    value = error["input"]
    if value is None:
        return (f"{noun} {key!r} has nothing under it: indent its keys under it (two more spaces), "
                f"or write `{key}: {{}}` for the defaults")
    if model is not None and isinstance(key, str) and key in model.model_fields:
        previous = _previous_key(doc, loc)
        under = f" `{previous[0]}` (line {previous[1]})" if previous else " the one above it"
        return (f"`{key}` is a {noun} key, but it sits where {noun} names go (same column as the name): "
                f"indent it under{under}")
    keys = f" ({_keys(model)})" if model else ""
    return f"{noun} {key!r} must be a mapping of keys{keys}, not {type(value).__name__} {value!r}"


def field_problems(errors: Sequence[ErrorDetails], doc: Any) -> list[tuple[Loc, str]]:
    """Each of the model's errors as (location, plain message); a missing key that a misspelt
    one was meant to be is reported once, at the misspelling."""
    meant: set[Loc] = set()
    out: list[tuple[Loc, str]] = []
    for error in errors:
        loc = tuple(part for part in error["loc"] if part != "[key]")  # pydantic's marker of a dict key
        kind = error["type"]
        if kind == "extra_forbidden":
            model = model_at(loc[:-1])
            key = str(loc[-1])
            message = f"unknown key {key!r}"
            if model is not None:
                given = doc_keys(doc, loc[:-1])
                missing = [f for f, info in model.model_fields.items() if f not in given]
                guess = closest(key, missing) or closest(key, model.model_fields)
                if guess is not None:
                    message += f": did you mean {guess!r}?"
                    if guess in missing and model.model_fields[guess].is_required():
                        meant.add((*loc[:-1], guess))
                else:
                    message += f" (a {_noun(model)} has: {_keys(model)})"
        elif kind == "missing":
            message = f"missing key `{loc[-1]}`"
        elif kind == "model_type":
            message = _not_a_mapping(error, doc)
        elif kind == "literal_error" and (allowed := re.findall(r"'([^']*)'", str((error.get("ctx") or {})
                                                                                    .get("expected", "")))):
            message = f"{error['input']!r} is not one of {', '.join(allowed)}"
            message += did_you_mean(str(error["input"]), allowed)
        elif kind == "string_pattern_mismatch" and "a-z0-9_" in str((error.get("ctx") or {}).get("pattern", "")):
            message = (f"{error['input']!r} is not a valid name: use lowercase letters, digits, `_`, `.` and `-`, "
                       "starting with a letter")
        else:
            message = error["msg"]
        out.append((loc, message))
    return [(loc, message) for loc, message in out if loc not in meant]


def doc_keys(doc: Any, loc: Loc) -> set[str]:
    """The keys the YAML document gives the mapping at ``loc`` (empty when there is none)."""
    node = doc
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return set()
    return {str(k) for k in node} if isinstance(node, dict) else set()
