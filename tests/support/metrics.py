"""A Prometheus ``/metrics`` page (the gateway's, the worker's), parsed."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Metrics:
    samples: tuple[Sample, ...]

    def value(self, metric: str, /, **labels: str) -> float | None:
        """The sum of the samples named ``metric`` whose labels include ``labels``; None if there is none."""
        found = [s.value for s in self.samples
                 if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())]
        return sum(found) if found else None


def scrape(url: str) -> Metrics:
    """``GET url`` (a ``/metrics`` page), parsed."""
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return Metrics(tuple(s for family in text_string_to_metric_families(response.text) for s in family.samples))
