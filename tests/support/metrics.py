"""A Prometheus ``/metrics`` page (the gateway's, the worker's), parsed."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Metrics:
    samples: tuple[Sample, ...]
    families: tuple[tuple[str, str], ...] = ()  # (name, type) of every family on the page, samples or not

    def shown(self) -> set[str]:
        """Every metric name the page shows: its samples' names, and each family's (a counter's with ``_total``),
        so a labelled metric whose labels were never used counts too (its HELP and TYPE lines are there)."""
        names = {s.name for s in self.samples} | {name for name, _ in self.families}
        return names | {f"{name}_total" for name, kind in self.families if kind == "counter"}

    def value(self, metric: str, /, **labels: str) -> float | None:
        """The sum of the samples named ``metric`` whose labels include ``labels``; None if there is none."""
        found = [s.value for s in self.samples
                 if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())]
        return sum(found) if found else None


def scrape(url: str) -> Metrics:
    """``GET url`` (a ``/metrics`` page), parsed."""
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    families = list(text_string_to_metric_families(response.text))
    return Metrics(tuple(s for family in families for s in family.samples),
                   tuple((family.name, family.type) for family in families))
