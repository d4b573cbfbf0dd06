"""The ops page's parts without services: metrics parsing and rates, the topology layout, the
bounded history, the incremental dead-letter tally, the collector's state, and the app's
read-only, offline web surface (Starlette's test client)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from headwater.cli.ops import is_loopback
from headwater.dead_letters import DeadLetter
from headwater.ops.page import dlq as dlq_module
from headwater.ops.page.app import STATIC, create_app
from headwater.ops.page.collector import Collector
from headwater.ops.page.dlq import DeadLetterTally
from headwater.ops.page.graph import layout
from headwater.ops.page.history import History, Point, point
from headwater.ops.page.metrics import WorkerMetrics, parse, rates
from headwater.runtime.settings import Settings
from headwater.runtime.topology import load_topology
from headwater.runtime.topology.readers import readers
from tests.support import DEFAULT_TOPOLOGY

METRICS = """\
# HELP headwater_stream_stage_outcomes_total Events leaving a stage, by stage and outcome.
# TYPE headwater_stream_stage_outcomes_total counter
headwater_stream_stage_outcomes_total{outcome="ok",stage="validate"} 90.0
headwater_stream_stage_outcomes_total{outcome="deadletter",stage="validate"} 4.0
headwater_stream_stage_outcomes_total{outcome="drop",stage="validate"} 6.0
# TYPE headwater_stream_events_dropped_total counter
headwater_stream_events_dropped_total{reason="a",stage="validate"} 2.0
headwater_stream_events_dropped_total{reason="b",stage="validate"} 4.0
# TYPE headwater_stream_events_dead_lettered_total counter
headwater_stream_events_dead_lettered_total{stage="validate"} 4.0
# TYPE headwater_sink_rows_written_total counter
headwater_sink_rows_written_total{sink="clickhouse"} 80.0
# TYPE headwater_sink_freshness_seconds gauge
headwater_sink_freshness_seconds{sink="clickhouse"} 3.5
# TYPE headwater_sink_end_to_end_seconds summary
headwater_sink_end_to_end_seconds_count{sink="clickhouse"} 4.0
headwater_sink_end_to_end_seconds_sum{sink="clickhouse"} 10.0
"""


def test_metrics_are_reduced_to_stages_and_sinks() -> None:
    found = parse(METRICS, 100.0)
    assert found.stages["validate"] == {"ok": 90, "deadletter": 4, "drop": 6, "dropped": 6, "dead_lettered": 4}
    assert found.sinks == {"clickhouse": {"rows_written": 80}}
    assert found.freshness == {"clickhouse": 3.5}
    assert found.end_to_end == {"clickhouse": 2.5}


def test_rates_between_two_scrapes_and_none_across_a_restart() -> None:
    before = WorkerMetrics(100.0, {"validate": {"ok": 10.0, "drop": 1.0}})
    after = WorkerMetrics(105.0, {"validate": {"ok": 60.0, "drop": 0.0}})  # drop went back: a restart
    assert rates(before, after) == {"validate": {"ok": 10.0, "drop": None}}
    assert rates(None, after) == {"validate": {"ok": None, "drop": None}}


def test_the_default_topology_is_laid_out_left_to_right() -> None:
    topology = load_topology(DEFAULT_TOPOLOGY)
    graph = layout(topology)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert {f"topic:{t}" for t in topology.topics} <= set(nodes)
    assert {f"sink:{s.name}" for s in topology.sinks} <= set(nodes)
    assert "window:event_rollups" in nodes
    stages = [nodes[f"stage:{s.name}"]["layer"] for s in topology.pipeline.stages]
    assert stages == list(range(stages[0], stages[0] + len(stages)))  # one column each, in order
    assert all(nodes[f"topic:{t}"]["layer"] < stages[0] for t in topology.pipeline.sources)
    output = nodes[f"topic:{topology.pipeline.output}"]["layer"]
    assert output == stages[-1] + 1
    assert {nodes[f"topic:{t}"]["layer"] for _, t in topology.pipeline.side_outputs()} == {output}
    assert all(nodes[f"sink:{s.name}"]["layer"] > nodes[f"topic:{s.source}"]["layer"] for s in topology.sinks)
    places = [(n["layer"], n["row"]) for n in graph["nodes"]]
    assert len(places) == len(set(places)), "two nodes in one place"
    assert all(e["source"] in nodes and e["target"] in nodes for e in graph["edges"])
    assert nodes["stage:validate"]["reader"] == "pipeline"
    assert nodes["sink:clickhouse"]["reader"] == "sink:clickhouse"


def test_a_cycle_does_not_hang_the_layout() -> None:
    topology = load_topology(DEFAULT_TOPOLOGY)
    capture = topology.pipeline.sources[0]
    graph = layout(topology, {"event_rollups": [capture]})  # a sink publishing back into a capture topic
    assert any(e["source"] == "sink:event_rollups" and e["target"] == f"topic:{capture}" for e in graph["edges"])


def _report(lag: int) -> dict[str, Any]:
    partition = {"topic": "t", "partition": 0, "committed": 5, "end": 5 + lag, "lag": lag, "lag_seconds": 1.0,
                 "consume_rate": 2.0, "produce_rate": 3.0, "catch_up_seconds": None, "member": "m",
                 "status": "OK", "rule": "caught up"}
    return {"at": 0.0, "window_seconds": 4.0, "status": "OK",
            "groups": [{"role": "pipeline", "group": "g", "members": 1, "status": "OK", "rule": "", "lag": lag,
                        "lag_seconds": 1.0, "partitions": [partition, {**partition, "partition": 1}]}]}


def test_the_history_is_bounded_by_points_and_by_time() -> None:
    history = History(span=10.0, max_points=5)
    for at in range(8):
        history.add(point(float(at), _report(at), None))
    assert len(history) == 5
    history.add(point(30.0, _report(1), 4.0))
    assert len(history) == 1  # the others are more than 10 s older
    [only] = history.to_json()["points"]
    assert only["readers"]["pipeline"] == {"lag": 1, "lag_seconds": 1.0, "in": 6.0, "out": 4.0}
    assert only["events"] == 4.0
    assert history.to_json(since=30.0)["points"] == []


def _letter(partition: int, offset: int, reason: str) -> DeadLetter:
    return DeadLetter(partition, offset, None, b"", reason, "validate", "boom", "events_raw", 1_700_000_000_000_000,
                      [{"event": "e", "uuid": "u"}])


class FakeTopic:
    """A dead-letter topic in memory, with what ``read_dead_letters`` was asked for."""

    def __init__(self) -> None:
        self.letters: dict[int, list[DeadLetter]] = {0: [], 1: []}
        self.asked: list[dict[int, int]] = []

    def add(self, partition: int, reason: str) -> None:
        self.letters[partition].append(_letter(partition, len(self.letters[partition]), reason))

    def offsets(self, _bootstrap: str, _topic: str) -> dict[int, tuple[int, int]]:
        return {p: (0, len(letters)) for p, letters in self.letters.items()}

    def read(self, _bootstrap: str, _topic: str, since: Mapping[int, int] | None = None) -> Iterator[DeadLetter]:
        self.asked.append(dict(since or {}))
        for p, letters in self.letters.items():
            yield from letters[(since or {}).get(p, 0):]


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> FakeTopic:
    fake = FakeTopic()
    monkeypatch.setattr(dlq_module, "dead_letter_offsets", fake.offsets)
    monkeypatch.setattr(dlq_module, "read_dead_letters", fake.read)
    return fake


def test_dead_letters_are_read_once_and_at_most_cap_at_a_time(topic: FakeTopic) -> None:
    tally = DeadLetterTally("kafka", "dlq", cap=3)
    for reason in ("a", "a", "b"):
        topic.add(0, reason)
    tally.refresh()
    tally.refresh()  # nothing new: nothing read again
    assert topic.asked == [{0: 0, 1: 0}]
    assert tally.to_json()["by_reason"] == [{"stage": "validate", "reason": "a", "count": 2},
                                            {"stage": "validate", "reason": "b", "count": 1}]
    for _ in range(5):
        topic.add(1, "c")
    tally.refresh()
    shown = tally.to_json()
    assert topic.asked[-1] == {0: 3, 1: 2}  # only partition 1's newest three
    assert (shown["total"], shown["read"], shown["skipped"]) == (8, 6, 2)
    assert len(shown["latest"]) == 6
    assert shown["latest"][0]["reason"] == "c"


class FakeSampler:
    """Stands in for ``headwater.ops.lag.Sampler``."""

    class Probe:
        def close(self) -> None:
            pass

    probe = Probe()

    def sample(self) -> None:
        pass

    def report(self) -> Any:
        class Report:
            def to_json(self) -> dict[str, Any]:
                return _report(0)

        return Report()


def test_the_collector_shows_a_worker_that_does_not_answer_and_freshness_as_unknown() -> None:
    def down(_url: str, _at: float) -> WorkerMetrics:
        raise OSError("connection refused")

    collector = Collector(FakeSampler(), ["validate"], ["clickhouse"], "http://127.0.0.1:1/metrics",  # type: ignore[arg-type]
                          None, scrape_metrics=down)
    collector.step()
    state = collector.state()
    assert state["worker"]["up"] is False
    assert "connection refused" in state["errors"]["metrics"]
    assert state["freshness"] == {"objective_seconds": 30.0, "worst_seconds": None, "ok": None}
    assert state["sinks"][0]["freshness_seconds"] is None
    assert state["lag"]["groups"][0]["role"] == "pipeline"
    assert state["points"] == 1


def test_the_collector_takes_rates_and_freshness_from_the_metrics() -> None:
    clock = iter([100.0, 100.0, 102.0, 102.0])
    scrapes = iter([parse(METRICS, 100.0), parse(METRICS.replace("} 90.0", "} 110.0"), 102.0)])
    collector = Collector(FakeSampler(), ["validate"], ["clickhouse"], "url", None,  # type: ignore[arg-type]
                          scrape_metrics=lambda _url, _at: next(scrapes), clock=lambda: next(clock))
    collector.step()
    collector.step()
    state = collector.state()
    [stage] = state["stages"]
    assert stage["rates"]["ok"] == 10.0
    assert stage["errors"] == 10.0
    assert state["freshness"]["ok"] is True
    assert state["sinks"][0]["fresh"] is True


class FakeSource:
    def __init__(self) -> None:
        self.history = History()
        self.history.add(Point(1.0, {"pipeline": {"lag": 0, "lag_seconds": 0.0, "in": None, "out": None}}, None))
        self.started = self.stopped = False

    def state(self) -> dict[str, Any]:
        return {"at": 1.0, "lag": _report(0)}

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


async def test_the_app_is_read_only_and_serves_its_own_files() -> None:
    source = FakeSource()
    app = create_app(source, {"app_id": "hw", "graph": {"nodes": [], "edges": [], "layers": 0}}, manage=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="/static/ops.js"' in page.text
        assert (await client.get("/static/ops.js")).status_code == 200
        assert (await client.get("/static/ops.css")).headers["content-type"].startswith("text/css")
        assert (await client.get("/api/state")).json()["lag"]["groups"][0]["role"] == "pipeline"
        assert len((await client.get("/api/history")).json()["points"]) == 1
        assert (await client.get("/api/history", params={"since": 1.0})).json()["points"] == []
        assert (await client.get("/api/history", params={"since": "x"})).status_code == 400
        assert (await client.get("/api/topology")).json()["app_id"] == "hw"
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/", "/api/state", "/static/ops.js", "/nowhere"):
                answer = await client.request(method, path)
                assert answer.status_code == 405, (method, path)
                assert answer.headers["allow"] == "GET, HEAD"
    assert not source.started  # manage=False: the server's lifespan would start it


def test_the_page_references_nothing_outside_itself() -> None:
    """No CDN, no web font, no absolute URL: the page works offline (the SVG namespace is a name, not a request)."""
    for path in STATIC.iterdir():
        text = path.read_text()
        urls = [u for u in re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s'\"]*", text)
                if u != "http://www.w3.org/2000/svg"]
        assert urls == [], (path.name, urls)
        assert "@import" not in text


def test_the_page_binds_to_loopback_unless_told() -> None:
    assert Settings().ops_host == "127.0.0.1"
    assert Settings().ops_port == 8100
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "192.168.1.2", "::", "example.com"):
        assert not is_loopback(host), host


def test_the_readers_the_page_colours_are_the_lag_reports() -> None:
    topology = load_topology(DEFAULT_TOPOLOGY)
    roles = {r.role for r in readers(topology)}
    coloured = {n["reader"] for n in layout(topology)["nodes"] if n["reader"]}
    assert coloured <= roles
