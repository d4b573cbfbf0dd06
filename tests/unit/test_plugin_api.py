"""Plugin API v1: person updates wherever a plugin runs, start-up, declared drops, PluginError and
PluginConfig, and the public surface (``streams.plugins``, its docs, the changelog, the scaffold)."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import uuid as uuidlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

import streams.plugins
from headwater.errors import HeadwaterError
from headwater.runtime.projects import Project
from headwater.runtime.topology import StageSpec, load_topology
from headwater.scaffold import scaffold
from headwater.topology_cases import CasesFile, run_cases
from schemas.events import RawEvent
from streams import runner as runner_module
from streams.components import build_stages
from streams.errors import StageError, StageStartError, StreamsError
from streams.event import PipelineEvent
from streams.plugins import Drop, Event, NoSettings, Plugin, PluginConfig, PluginContext, PluginError
from streams.plugins.kv import MemoryKeyValue
from streams.plugins.stage import PluginStage
from streams.plugins.testing import PluginHarness, make_event
from streams.runner import StageRunner
from streams.stages.base import Errored, StageResources
from tests.conftest import ROOT
from tests.unit.test_builtin_plugins import write_topology

HERE = "tests.unit.test_plugin_api"
PROJECT = Project(id=1, name="test", api_token="phc_test")


# --- plugins these tests run (by import path, as a third party's would be) ----------------------------------------


class SetsPerson(Plugin["SetsPerson.Config"]):
    """Sets ``plan`` on the person, and ``first_plan`` once; removes ``forget`` from the update."""

    class Config(PluginConfig):
        plan: str = "pro"

    async def process(self, event: Event, ctx: PluginContext[SetsPerson.Config]) -> Event:
        event.set["plan"] = self.config.plan
        event.set_once["first_plan"] = self.config.plan
        event.set.pop("forget", None)
        return event


class Sees(Plugin[NoSettings]):
    """Records the person update it is handed (in ``SEEN``)."""

    async def process(self, event: Event, ctx: PluginContext[NoSettings]) -> Event:
        SEEN.append((dict(event.set), dict(event.set_once), set(event.properties)))
        return event


SEEN: list[tuple[dict[str, Any], dict[str, Any], set[str]]] = []


class Opens(Plugin["Opens.Config"]):
    """Opens ``path`` in ``setup`` (like geoip's database); counts how often setup ran."""

    setups = 0

    class Config(PluginConfig):
        path: str

    async def setup(self) -> None:
        type(self).setups += 1
        Path(self.config.path).read_bytes()

    async def process(self, event: Event, ctx: PluginContext[Opens.Config]) -> Event:
        return event


class Drops(Plugin["Drops.Config"]):
    """Returns ``Drop(reason)`` (``reason`` from the event's ``why`` property), or None when it is ``none``."""

    class Config(PluginConfig):
        pass

    async def process(self, event: Event, ctx: PluginContext[Drops.Config]) -> Event | Drop | None:
        why = event.properties.get("why")
        if why is None:
            return event
        return None if why == "none" else Drop(str(why))


class Fails(Plugin[NoSettings]):
    """Raises ``PluginError`` on events with ``bad``, once per event when ``flaky`` (then passes)."""

    calls = 0

    async def process(self, event: Event, ctx: PluginContext[NoSettings]) -> Event:
        type(self).calls += 1
        if event.properties.get("bad") or (event.properties.get("flaky") and type(self).calls == 1):
            raise PluginError("the payload has no order id")
        return event


def _raw(**fields: Any) -> PipelineEvent:
    properties = fields.pop("properties", {})
    raw = RawEvent(uuid=str(uuidlib.uuid4()), event="e", distinct_id="d", token=PROJECT.api_token, timestamp=1,
                   now=1, sent_at=None, ip="1.2.3.4", properties=orjson.dumps(properties).decode(), set=None,
                   set_once=None, historical_migration=False, capture_warnings=[], skip_person_processing=False)
    raw.update(fields)  # type: ignore[typeddict-item]
    return PipelineEvent.from_raw(raw, "events_raw")


class _Projects:
    async def resolve(self, token: str) -> Project | None:
        return PROJECT if token == PROJECT.api_token else None


def _runner(*stages: dict[str, Any]) -> StageRunner:
    """resolve_project, ``stages`` (plugins by class name in this module, or built-in types), prepare."""
    specs = [StageSpec(name="resolve_project", type="resolve_project")]
    for given in stages:
        stage = dict(given)
        kind = stage.pop("plugin", None)
        specs.append(StageSpec(**stage, type="plugin", plugin=f"{HERE}:{kind}") if kind else
                     StageSpec(**stage, type=stage["name"]))
    specs.append(StageSpec(name="prepare", type="prepare"))
    resources = StageResources.offline(projects=_Projects(), kv=lambda _: MemoryKeyValue())
    return StageRunner(build_stages(specs, resources))


def _emitted(event: PipelineEvent) -> dict[str, Any]:
    """The properties the event leaves the pipeline with."""
    assert event.processed is not None
    props: dict[str, Any] = orjson.loads(event.processed["properties"])
    return props


def _dropped(stage: str, reason: str) -> float:
    return REGISTRY.get_sample_value("headwater_stream_events_dropped_total", {"stage": stage, "reason": reason}) or 0


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "BACKOFF_START", 0.0)


# --- 1. a plugin's person update takes effect before or after normalize ------------------------------------------


@pytest.mark.parametrize("order", [["person", "normalize"], ["normalize", "person"]])
async def test_a_plugins_set_and_set_once_reach_the_person_wherever_it_runs(order: list[str]) -> None:
    stages = {"person": {"name": "person", "plugin": "SetsPerson"}, "normalize": {"name": "normalize"}}
    runner = _runner(*(stages[name] for name in order))
    await runner.start()
    event = _raw(properties={"$browser": "Firefox", "$set": {"email": "a@b.c", "forget": 1}},
                 set=orjson.dumps({"name": "A"}).decode())
    [out] = (await runner.run([event])).passed
    props = _emitted(out)
    assert props["$set"] == {"email": "a@b.c", "name": "A", "plan": "pro", "$browser": "Firefox"}
    assert props["$set_once"] == {"first_plan": "pro", "$initial_browser": "Firefox"}


async def test_a_plugin_sees_one_person_update_before_and_after_normalize() -> None:
    SEEN.clear()
    runner = _runner({"name": "before", "plugin": "Sees"}, {"name": "normalize"}, {"name": "after", "plugin": "Sees"})
    await runner.start()
    event = _raw(properties={"$os": "iOS", "$set": {"email": "a@b.c", "name": "old"}},
                 set=orjson.dumps({"name": "new"}).decode(), set_once=orjson.dumps({"first": 1}).decode())
    await runner.run([event])
    before, after = SEEN
    # the SDK's top-level $set wins over properties.$set, as normalize merges them; neither is in properties
    assert before == ({"email": "a@b.c", "name": "new"}, {"first": 1}, {"$os"})
    assert after == ({"email": "a@b.c", "name": "new", "$os": "iOS"}, {"first": 1, "$initial_os": "iOS"},
                     {"$os", "$ip"})


async def test_a_retried_plugin_gets_the_person_update_again() -> None:
    Fails.calls = 0
    runner = _runner({"name": "normalize"}, {"name": "fails", "plugin": "Fails", "on_error": "retry"})
    await runner.start()
    [out] = (await runner.run([_raw(properties={"flaky": True, "$set": {"email": "a@b.c"}})])).passed
    assert Fails.calls == 2
    assert _emitted(out)["$set"] == {"email": "a@b.c"}


# --- 2. stages start before the first event; a failing setup stops the worker, named -----------------------------


async def test_the_runner_starts_each_plugin_once_before_any_event(tmp_path: Path) -> None:
    (tmp_path / "there").write_text("x")
    Opens.setups = 0
    runner = _runner({"name": "opens", "plugin": "Opens", "config": {"path": str(tmp_path / "there")}})
    await runner.start()
    assert Opens.setups == 1
    assert len((await runner.run([_raw(), _raw()])).passed) == 2
    assert Opens.setups == 1
    await runner.close()


async def test_a_failing_setup_is_one_error_naming_the_stage_and_the_cause(tmp_path: Path) -> None:
    runner = _runner({"name": "opens", "plugin": "Opens", "config": {"path": str(tmp_path / "missing")}})
    with pytest.raises(StageStartError) as caught:
        await runner.start()
    assert str(caught.value) == (f"stage opens cannot start: FileNotFoundError: [Errno 2] No such file or "
                                 f"directory: '{tmp_path / 'missing'}'")
    assert isinstance(caught.value, StreamsError)  # the CLI prints it as one line


def test_topology_test_starts_the_stages_and_stops_at_a_failing_setup(tmp_path: Path) -> None:
    missing = tmp_path / "GeoLite2-City.mmdb"
    path = write_topology(tmp_path / "topology.yaml", f"""\
        - {{name: geoip, type: plugin, plugin: geoip, config: {{database_path: {missing}}}}}
        """)
    cases = CasesFile.model_validate({"cases": [{"name": "c", "input": [{"event": "e", "distinct_id": "d"}],
                                                 "expect": [{"event": "e"}]}]})
    with pytest.raises(StageStartError, match=f"^stage geoip cannot start: database_path {re.escape(str(missing))} "
                                              "does not exist$"):
        run_cases(load_topology(path), cases)


# --- 3. Drop(reason): counted by reason, no warning; None keeps its meaning ---------------------------------------


async def test_drop_is_counted_by_its_reason_without_a_warning_and_none_is_warned() -> None:
    runner = _runner({"name": "drops", "plugin": "Drops"})
    await runner.start()
    sampled, unwarned = _dropped("drops", "sampled"), _dropped("drops", "dropped_by_plugin")
    result = await runner.run([_raw(properties={"why": "sampled"}), _raw(properties={"why": "none"}), _raw()])
    assert (result.dropped, len(result.passed)) == (2, 1)
    assert (_dropped("drops", "sampled"), _dropped("drops", "dropped_by_plugin")) == (sampled + 1, unwarned + 1)
    [warned] = result.warned
    assert [w.type for w in warned.warnings] == ["event_dropped_by_transformation"]
    assert warned.properties["why"] == "none"


@pytest.mark.parametrize("reason", ["Not A Label", "user_42" * 20])
async def test_a_drop_reason_must_be_a_metric_label(reason: str) -> None:
    harness = PluginHarness(Drops)
    with pytest.raises(PluginError, match="a reason is a metric label"):
        await harness.run(make_event(properties={"why": reason}))


async def test_a_plugin_has_a_bounded_number_of_drop_reasons() -> None:
    harness = PluginHarness(Drops)
    await harness.run(*(make_event(properties={"why": f"reason_{i}"}) for i in range(32)))
    with pytest.raises(PluginError, match="32 per plugin"):
        await harness.run(make_event(properties={"why": "one_too_many"}))
    await harness.run(make_event(properties={"why": "reason_0"}))  # a known reason still works


async def test_the_harness_records_drop_reasons_and_warnings() -> None:
    harness = PluginHarness(Drops)
    out = await harness.run({"event": "e", "properties": {"why": "bot"}}, {"event": "e", "properties": {"why": "none"}},
                            {"event": "e"})
    assert [o is None for o in out] == [True, True, False]
    assert harness.dropped == ["bot", "dropped_by_plugin"]
    assert harness.warnings == ["event_dropped_by_transformation"]


# --- 4. PluginError and PluginConfig ---------------------------------------------------------------------------


async def test_plugin_error_follows_the_policy_and_its_message_is_the_dead_letters_error() -> None:
    runner = _runner({"name": "fails", "plugin": "Fails", "on_error": "dead_letter"})
    await runner.start()
    [failed] = (await runner.run([_raw(properties={"bad": True})])).dead_lettered
    assert (failed.stage, failed.reason, failed.error) == ("fails", "error", "the payload has no order id")
    dropping = _runner({"name": "fails", "plugin": "Fails", "on_error": "drop"})
    await dropping.start()
    assert (await dropping.run([_raw(properties={"bad": True})])).dropped == 1
    assert issubclass(PluginError, StageError)
    assert issubclass(PluginError, HeadwaterError)


def test_plugin_config_is_strict_and_frozen() -> None:
    config = Opens.Config(path="/x")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Opens.Config.model_validate({"path": "/x", "paht": "/y"})
    with pytest.raises(ValidationError, match="frozen"):
        config.path = "/y"  # type: ignore[misc]
    assert issubclass(NoSettings, PluginConfig)
    assert Plugin.Config is NoSettings


async def test_a_plugin_that_returns_something_else_fails_the_event() -> None:
    class Wrong(Plugin[NoSettings]):
        async def process(self, event: Event, ctx: PluginContext[NoSettings]) -> Any:
            return {"event": event.event}

    stage = PluginStage("wrong", Wrong, NoSettings(), MemoryKeyValue())
    await stage.start()
    [outcome] = await stage.process_batch([_raw()])
    assert isinstance(outcome, Errored)
    assert isinstance(outcome.error, PluginError)
    assert "returned dict, not an Event, a Drop or None" in str(outcome.error)


# --- 5. batches: one call per batch for batch plugins, one thread hop per batch for sync ones -------------------


async def test_a_plugin_with_process_batch_gets_the_batch_in_one_call() -> None:
    calls: list[int] = []

    class Enricher(Plugin[NoSettings]):
        async def process(self, event: Event, ctx: PluginContext[NoSettings]) -> Event:
            raise AssertionError("process_batch is called instead")

        async def process_batch(self, events: list[Event], ctx: PluginContext[NoSettings]) -> list[Event | Drop | None]:
            calls.append(len(events))
            return [None if e.distinct_id == "gone" else Drop("skip") if e.distinct_id == "skip" else e for e in events]

    stage = PluginStage("enrich", Enricher, NoSettings(), MemoryKeyValue())
    await stage.start()
    outcomes = await stage.process_batch([_raw(distinct_id="a"), _raw(distinct_id="gone"), _raw(distinct_id="skip")])
    assert calls == [3]
    assert [type(o).__name__ for o in outcomes] == ["Ok", "Drop", "Drop"]
    assert [getattr(o, "reason", None) for o in outcomes[1:]] == ["dropped_by_plugin", "skip"]


async def test_a_sync_plugin_runs_a_batch_in_one_thread_and_fails_only_the_bad_event() -> None:
    import threading

    threads: set[int] = set()

    class Blocking(Plugin[NoSettings]):
        def process(self, event: Event, ctx: PluginContext[NoSettings]) -> Event:
            threads.add(threading.get_ident())
            if event.properties.get("bad"):
                raise PluginError("bad event")
            return event

    stage = PluginStage("blocking", Blocking, NoSettings(), MemoryKeyValue())
    await stage.start()
    outcomes = await stage.process_batch([_raw(), _raw(properties={"bad": True}), _raw()])
    assert [type(o).__name__ for o in outcomes] == ["Ok", "Errored", "Ok"]
    assert len(threads) == 1
    assert threading.get_ident() not in threads


# --- 6. the public surface: streams.plugins, its docs, the changelog, the scaffold ------------------------------

PUBLIC = ["API_VERSION", "AgentContext", "AgentHandler", "Drop", "Event", "KeyValueStore", "NoSettings", "Plugin",
          "PluginConfig", "PluginContext", "PluginError", "PluginMetrics"]


def test_streams_plugins_exports_exactly_api_v1() -> None:
    assert streams.plugins.API_VERSION == "1"
    assert sorted(streams.plugins.__all__) == PUBLIC
    assert all(hasattr(streams.plugins, name) for name in PUBLIC)
    import streams.plugins.testing as testing

    assert sorted(testing.__all__) == ["PluginHarness", "make_event"]


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^#{1,2} ", text[start + len(heading):], flags=re.MULTILINE)
    return text[start: start + len(heading) + following.start()] if following else text[start:]


def test_the_docs_say_what_v1_makes_stable_and_the_changelog_lists_it() -> None:
    stable = _section((ROOT / "docs" / "plugins.md").read_text(), "## API v1: what is stable")
    for name in [*PUBLIC, "PluginHarness", "make_event"]:
        assert f"`{name}`" in stable, f"docs/plugins.md, API v1: {name} is not described"
    changelog = _section((ROOT / "CHANGELOG.md").read_text(), "## Plugin API")
    for name in ["PluginError", "PluginConfig", "Drop", "API_VERSION", "setup", "${"]:
        assert name in changelog, f"CHANGELOG.md, Plugin API: nothing about {name}"


def test_the_scaffold_writes_a_v1_plugin_that_runs_its_samples(tmp_path: Path) -> None:
    root = scaffold("team_colour", tmp_path)
    source = (root / "src" / "team_colour" / "plugin.py").read_text()
    imported = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
                and node.module == "streams.plugins" for alias in node.names}
    assert imported
    assert imported <= set(streams.plugins.__all__)
    spec = importlib.util.spec_from_file_location("team_colour_plugin", root / "src" / "team_colour" / "plugin.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin_cls = module.TeamColour
    assert issubclass(plugin_cls.Config, PluginConfig)
    samples = json.loads((root / "sample_events.json").read_text())
    results = PluginHarness(plugin_cls).run_sync(*samples)
    assert all(out is not None and out.properties["team_colour_seen"] is True for out in results)
    assert results[2] is not None
    assert results[2].set == {"email": "two@example.com"}
