"""The metric names a PromQL expression reads, to check alert rules and dashboards against docs/metrics.md.

Not a PromQL parser (``promtool check rules`` checks the syntax): it drops strings, label matchers,
ranges and grouping clauses, then keeps the identifiers that are neither a function (followed by
``(``) nor a keyword.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from headwater.metrics_docs import names

PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus itself adds to every target."""

KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                      "bool", "offset", "inf", "nan"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub(" ", text)
    found = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end():].lstrip().startswith("(") or match.group().lower() in KEYWORDS:
            continue
        found.add(match.group())
    return found


def unknown_metrics(exprs: Iterable[str]) -> dict[str, set[str]]:
    """Per expression, the metrics it reads that neither the reference nor Prometheus has (empty: all known)."""
    known = names() | PROMETHEUS_OWN
    unknown = {expr: metric_names(expr) - known for expr in exprs}
    return {expr: missing for expr, missing in unknown.items() if missing}
