"""docs/metrics.md is generated from the telemetry modules, and lists every headwater_* metric they name."""

from __future__ import annotations

from headwater.metrics_docs import reference, render
from tests.support import ROOT


def test_the_metrics_page_is_generated_from_the_code() -> None:
    assert (ROOT / "docs" / "metrics.md").read_text() == render(), (
        "docs/metrics.md is stale: python -m headwater.metrics_docs > docs/metrics.md")


def test_the_reference_has_every_collector_of_each_process() -> None:
    from prometheus_client import REGISTRY

    import capture_gateway.ops  # noqa: F401 - the gateway's /metrics: everything registered by its modules
    import streams.app  # noqa: F401 - the worker's, sinks included

    documented = {(d.name.removesuffix("_total") if d.kind == "counter" else d.name, d.kind) for d in reference()}
    registered = {(family.name, family.type) for family in REGISTRY.collect() if family.name.startswith("headwater_")}
    assert registered - documented == set(), "a metric is missing from its package's telemetry module or the page"


def test_metrics_are_named_with_units_and_the_headwater_prefix() -> None:
    docs = reference()
    assert {d.process for d in docs} == {"gateway", "worker"}
    for doc in docs:
        assert doc.name.startswith("headwater_")
        assert doc.help.strip(), doc.name
        if doc.kind == "counter":
            assert doc.name.endswith("_total"), doc.name
        assert not any(doc.name.endswith(unit) for unit in ("_ms", "_millis", "_milliseconds", "_minutes")), doc.name
    by_name = {d.name: d for d in docs}
    for name, kind, labels in [
        ("headwater_consumer_lag_messages", "gauge", ("group", "topic", "partition")),
        ("headwater_consumer_lag_seconds", "gauge", ("group", "topic", "partition")),
        ("headwater_sink_end_to_end_seconds", "histogram", ("sink",)),
        ("headwater_sink_freshness_seconds", "gauge", ("sink",)),
        ("headwater_sink_batch_records", "histogram", ("sink",)),
        ("headwater_stream_stage_seconds", "histogram", ("stage",)),
        ("headwater_stream_dead_letters_total", "counter", ("stage", "reason")),
    ]:
        assert (by_name[name].kind, by_name[name].labels) == (kind, labels), name
