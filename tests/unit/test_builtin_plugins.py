"""The built-in plugins: each one's behaviour and config errors, their registration, and their docs."""

from __future__ import annotations

import hashlib
import re
import textwrap
import uuid as uuidlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from headwater.errors import TopologyError
from headwater.runtime.topology import StageSpec, load_topology
from schemas.events import RawEvent
from streams.components import component_problems, stage_type
from streams.errors import PluginError, StageStartError
from streams.event import PipelineEvent
from streams.plugins import Event, Plugin, PluginConfig
from streams.plugins.builtin import BUILTIN
from streams.plugins.builtin.bot_filter import BotFilter
from streams.plugins.builtin.event_rules import EventRules, Match, Rule
from streams.plugins.builtin.geoip import GeoIP
from streams.plugins.builtin.property_filter import PropertyFilter
from streams.plugins.builtin.sampling import Sampling, bucket
from streams.plugins.builtin.user_agent import UserAgent, describe
from streams.plugins.kv import MemoryKeyValue
from streams.plugins.registry import resolve_plugin
from streams.plugins.testing import PluginHarness, make_event
from streams.stages.base import Ok, StageResources
from streams.stages.registry import StageType
from tests.conftest import ROOT
from tests.fixtures.geoip import write_city_db

CHROME_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.1 Mobile/15E148 Safari/604.1")
SAFARI_IPAD = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/16.6 Mobile/15E148 Safari/604.1")
CHROME_ANDROID_PHONE = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                        "Chrome/120.0.0.0 Mobile Safari/537.36")
CHROME_ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/120.0.0.0 Safari/537.36")
EDGE_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0")
CUBOT_PHONE = ("Mozilla/5.0 (Linux; Android 10; Cubot X30) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/119.0.0.0 Mobile Safari/537.36")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 "
            "Safari/537.36")


# --- through the plugin harness (the worker's adapter), no services ----------------------------------------------


def harness(plugin_cls: type[Plugin[Any]], **config: Any) -> PluginHarness:
    return PluginHarness(plugin_cls, config)


async def passed(plugin: PluginHarness, event: Event) -> Event:
    """The event the plugin passed on; fails the test if it dropped it."""
    [out] = await plugin.run(event)
    assert out is not None, f"the plugin dropped the event ({plugin.dropped[-1]})"
    return out


async def props(plugin: PluginHarness, **properties: Any) -> dict[str, Any]:
    return (await passed(plugin, make_event("$pageview", properties=properties))).properties


async def kept(plugin: PluginHarness, event: Event) -> bool:
    [out] = await plugin.run(event)
    return out is not None


def config_error(plugin_cls: type[Plugin[Any]], **config: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        plugin_cls.Config.model_validate(config)
    return str(caught.value)


# --- user_agent ---------------------------------------------------------------------------------------------------


async def test_user_agent_sets_browser_os_and_device_type() -> None:
    found = await props(harness(UserAgent), **{"$raw_user_agent": CHROME_MAC})
    assert found == {"$raw_user_agent": CHROME_MAC, "$browser": "Chrome", "$browser_version": 120.0,
                     "$os": "Mac OS X", "$os_version": "10.15.7", "$device_type": "Desktop"}


@pytest.mark.parametrize(("ua", "browser", "os", "device_type"), [
    (SAFARI_IPHONE, "Mobile Safari", "iOS", "Mobile"),
    (SAFARI_IPAD, "Mobile Safari", "iOS", "Tablet"),
    (CHROME_ANDROID_PHONE, "Chrome Mobile", "Android", "Mobile"),
    (CHROME_ANDROID_TABLET, "Chrome", "Android", "Tablet"),
    (EDGE_WINDOWS, "Microsoft Edge", "Windows", "Desktop"),
])
async def test_user_agent_devices_and_posthog_names(ua: str, browser: str, os: str, device_type: str) -> None:
    found = await props(harness(UserAgent), **{"$raw_user_agent": ua})
    assert (found["$browser"], found["$os"], found["$device_type"]) == (browser, os, device_type)


async def test_user_agent_keeps_what_the_sdk_set_unless_overwrite() -> None:
    given = {"$raw_user_agent": CHROME_MAC, "$browser": "Arc", "$device_type": "Desktop"}
    untouched = await props(harness(UserAgent), **given)
    assert (untouched["$browser"], untouched["$os"]) == ("Arc", "Mac OS X")
    replaced = await props(harness(UserAgent, overwrite=True), **given)
    assert replaced["$browser"] == "Chrome"


async def test_user_agent_leaves_bots_missing_and_unknown_user_agents_alone() -> None:
    plugin = harness(UserAgent)
    assert await props(plugin, **{"$raw_user_agent": GOOGLEBOT}) == {"$raw_user_agent": GOOGLEBOT}
    assert await props(plugin, **{"$raw_user_agent": "???"}) == {"$raw_user_agent": "???"}
    assert await props(plugin, **{"$raw_user_agent": 42}) == {"$raw_user_agent": 42}
    assert await props(plugin, other=1) == {"other": 1}


async def test_user_agent_reads_the_configured_property_and_caches_parses() -> None:
    plugin = harness(UserAgent, source_property="ua")
    await props(plugin, ua=SAFARI_IPHONE)
    hits = describe.cache_info().hits
    found = await props(plugin, ua=SAFARI_IPHONE)
    assert found["$os_version"] == "17.1"
    assert describe.cache_info().hits == hits + 1


def test_user_agent_config_errors() -> None:
    assert "source_property" in config_error(UserAgent, source_property="")
    assert "Extra inputs are not permitted" in config_error(UserAgent, overwrite=True, colour="blue")


# --- geoip --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GeoLite2-City-shaped database: 1.2.3.0/24 is Berlin, 2001:db8::/32 is Paris."""
    return write_city_db(tmp_path_factory.mktemp("geoip") / "city.mmdb")


BERLIN = {
    "$geoip_city_name": "Berlin", "$geoip_country_name": "Germany", "$geoip_country_code": "DE",
    "$geoip_continent_name": "Europe", "$geoip_continent_code": "EU", "$geoip_postal_code": "10115",
    "$geoip_latitude": 52.52, "$geoip_longitude": 13.405, "$geoip_accuracy_radius": 20,
    "$geoip_time_zone": "Europe/Berlin", "$geoip_subdivision_1_code": "BE",
    "$geoip_subdivision_1_name": "Land Berlin",
}


async def test_geoip_sets_event_and_person_properties(city_db: Path) -> None:
    plugin = harness(GeoIP, database_path=str(city_db))
    out = await passed(plugin, make_event(properties={"$ip": "1.2.3.4"}))
    assert out.properties == {"$ip": "1.2.3.4", **BERLIN}
    assert out.set == BERLIN
    assert out.set_once == {k.replace("$geoip_", "$initial_geoip_"): v for k, v in BERLIN.items()}
    await plugin.close()


async def test_geoip_ipv6_mapped_addresses_the_capture_ip_and_language(city_db: Path) -> None:
    plugin = harness(GeoIP, database_path=str(city_db), language="de", set_person_properties=False)
    paris = await props(plugin, **{"$ip": "2001:db8::1"})
    assert (paris["$geoip_country_code"], paris["$geoip_time_zone"]) == ("FR", "Europe/Paris")
    assert "$geoip_country_name" not in paris  # the record has no German name
    mapped = await props(plugin, **{"$ip": "::ffff:1.2.3.9"})
    assert mapped["$geoip_country_name"] == "Deutschland"
    from_capture = await passed(plugin, make_event(ip="1.2.3.4"))
    assert from_capture.properties["$geoip_city_name"] == "Berlin"
    assert (from_capture.set, from_capture.set_once) == ({}, {})


async def test_geoip_skips_misses_bad_addresses_and_geoip_disable(city_db: Path) -> None:
    plugin = harness(GeoIP, database_path=str(city_db))
    for given in ({"$ip": "9.9.9.9"}, {"$ip": "not an ip"}, {"$ip": "1.2.3.4", "$geoip_disable": True}, {}):
        out = await passed(plugin, make_event(properties=given))
        assert (out.properties, out.set, out.set_once) == (given, {}, {})


async def test_geoip_keeps_person_properties_the_event_sets(city_db: Path) -> None:
    plugin = harness(GeoIP, database_path=str(city_db))
    top_level = await passed(plugin, make_event(properties={"$ip": "1.2.3.4"}, set={"$geoip_city_name": "Potsdam"}))
    assert (top_level.set["$geoip_city_name"], top_level.properties["$geoip_city_name"]) == ("Potsdam", "Berlin")
    # the SDK may put the person update in properties instead: it is the same update
    in_properties = await passed(plugin, make_event(properties={"$ip": "1.2.3.4", "$set": {"$geoip_city_name": "X"}}))
    assert (in_properties.set["$geoip_city_name"], in_properties.set["$geoip_country_code"]) == ("X", "DE")


async def test_geoip_cannot_start_without_its_database(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mmdb"
    plugin = PluginHarness(GeoIP, {"database_path": str(missing)}, stage="geo")
    with pytest.raises(StageStartError, match=f"^stage geo cannot start: database_path {re.escape(str(missing))} "
                                              "does not exist$") as caught:
        await plugin.start()
    assert isinstance(caught.value.__cause__, PluginError)
    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a database")
    with pytest.raises(StageStartError, match=r"cannot open database_path .*garbage\.mmdb as a MaxMind database"):
        await harness(GeoIP, database_path=str(garbage)).run(make_event(properties={"$ip": "1.2.3.4"}))


def test_geoip_config_errors() -> None:
    assert "database_path\n  Field required" in config_error(GeoIP)
    assert "Extra inputs are not permitted" in config_error(GeoIP, database_path="/x.mmdb", database="/y.mmdb")


# --- property_filter ----------------------------------------------------------------------------------------------


def _sha(salt: str, text: str) -> str:
    return hashlib.sha256((salt + text).encode()).hexdigest()


async def test_property_filter_drops_by_name_and_glob() -> None:
    found = await props(harness(PropertyFilter, drop=["password", "secret_*"]), password="x", secret_a=1,
                        secret_b=2, secrets=3, page="/")
    assert found == {"secrets": 3, "page": "/"}


async def test_property_filter_keep_keeps_posthog_properties_unless_told_not_to() -> None:
    given = make_event(properties={"plan": "pro", "page": "/", "email": "a@b.c", "$browser": "Chrome",
                                   "$set": {"email": "a@b.c", "$os": "iOS"}})
    loose = await passed(harness(PropertyFilter, keep=["p*"]), given)
    assert (loose.properties, loose.set) == ({"plan": "pro", "page": "/", "$browser": "Chrome"}, {"$os": "iOS"})
    strict = await passed(harness(PropertyFilter, keep=["plan", "email"], keep_posthog_properties=False), given)
    assert (strict.properties, strict.set) == ({"plan": "pro", "email": "a@b.c"}, {"email": "a@b.c"})


async def test_property_filter_hashes_event_and_person_properties_and_the_distinct_id() -> None:
    plugin = harness(PropertyFilter, hash=["email", "*_id"], salt="pepper", hash_distinct_id=True)
    event = make_event(distinct_id="user-1", properties={
        "email": "a@b.c", "org_id": 42, "tags": None, "page": "/", "$set_once": {"email": "a@b.c"}},
        set={"email": "a@b.c", "name": "A"})
    out = await passed(plugin, event)
    assert out.properties == {"email": _sha("pepper", "a@b.c"), "org_id": _sha("pepper", "42"), "tags": None,
                              "page": "/"}
    assert out.set == {"email": _sha("pepper", "a@b.c"), "name": "A"}
    assert out.set_once == {"email": _sha("pepper", "a@b.c")}
    assert out.distinct_id == _sha("pepper", "user-1")


def test_property_filter_config_errors() -> None:
    assert "`salt` is required" in config_error(PropertyFilter, hash=["email"])
    assert "`salt` is required" in config_error(PropertyFilter, hash_distinct_id=True, salt="")
    assert "drop\n  Input should be a valid list" in config_error(PropertyFilter, drop="email")
    config = PropertyFilter.Config.model_validate({"hash": ["email"], "salt": "pepper"})
    assert "pepper" not in repr(config)


# --- event_rules --------------------------------------------------------------------------------------------------


async def test_event_rules_first_matching_rule_wins() -> None:
    plugin = harness(EventRules, rules=[
        {"match": {"event": "$pageview", "property": {"$current_url": "https://x.test/health"}}, "action": "drop"},
        {"match": {"event": "legacy_*"}, "action": "rename", "rename_to": "modern"},
        {"match": {"event": "legacy_signup"}, "action": "drop"},
        {"match": {"property": {"internal": True}}, "action": "drop"},
    ])
    assert not await kept(plugin, make_event("$pageview", properties={"$current_url": "https://x.test/health"}))
    untouched = await passed(plugin, make_event("$pageview", properties={"$current_url": "https://x.test/"}))
    assert untouched.event == "$pageview"
    assert (await passed(plugin, make_event("legacy_signup"))).event == "modern"
    assert not await kept(plugin, make_event("anything", properties={"internal": True}))
    assert (await passed(plugin, make_event("anything", properties={"internal": False}))).event == "anything"
    assert (plugin.dropped, plugin.warnings) == (["rule", "rule"], [])  # a rule's drop is meant: no warning


def test_event_rules_config_errors() -> None:
    assert "`rename` needs `rename_to`" in config_error(EventRules, rules=[{"match": {}, "action": "rename"}])
    assert "`rename_to` goes with `action: rename`" in config_error(
        EventRules, rules=[{"match": {"event": "a"}, "action": "drop", "rename_to": "b"}])
    assert "rules\n  List should have at least 1 item" in config_error(EventRules, rules=[])
    assert "rules.0.match.name\n  Extra inputs" in config_error(
        EventRules, rules=[{"match": {"name": "a"}, "action": "drop"}])
    assert "rules.0.action\n  Input should be 'rename' or 'drop'" in config_error(
        EventRules, rules=[{"match": {}, "action": "delete"}])


# --- bot_filter ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ua", [GOOGLEBOT, HEADLESS, "curl/8.4.0", "python-requests/2.31", "Go-http-client/1.1",
                                "Mozilla/5.0 (compatible; UptimeRobot/2.0)", "Chrome-Lighthouse"])
async def test_bot_filter_drops_bots_with_a_reason_and_no_warning(ua: str) -> None:
    plugin = harness(BotFilter)
    assert not await kept(plugin, make_event(properties={"$raw_user_agent": ua}))
    assert (plugin.dropped, plugin.warnings, plugin.counts) == (["bot"], [], {})


@pytest.mark.parametrize("ua", [CHROME_MAC, SAFARI_IPHONE, CUBOT_PHONE, EDGE_WINDOWS])
async def test_bot_filter_passes_browsers(ua: str) -> None:
    plugin = harness(BotFilter)
    assert await props(plugin, **{"$raw_user_agent": ua}) == {"$raw_user_agent": ua}
    assert (plugin.dropped, plugin.counts) == ([], {})


async def test_bot_filter_tag_properties_and_own_patterns() -> None:
    tagger = harness(BotFilter, action="tag")
    assert await props(tagger, **{"$useragent": GOOGLEBOT}) == {"$useragent": GOOGLEBOT, "$is_bot": True}
    assert tagger.counts == {"bot_tagged": 1}
    assert await props(tagger, ua=GOOGLEBOT) == {"ua": GOOGLEBOT}  # not a user agent property
    custom = harness(BotFilter, user_agent_properties=["ua"], extra_patterns=["^internal-probe/"],
                     allow_patterns=[r"googlebot/2\.1"])
    assert not await kept(custom, make_event(properties={"ua": "internal-probe/1.0"}))
    assert await props(custom, ua=GOOGLEBOT) == {"ua": GOOGLEBOT}
    assert await props(custom, **{"$raw_user_agent": "curl/8"}) == {"$raw_user_agent": "curl/8"}


def test_bot_filter_config_errors() -> None:
    assert "'(' is not a regular expression" in config_error(BotFilter, extra_patterns=["("])
    assert "action\n  Input should be 'drop' or 'tag'" in config_error(BotFilter, action="block")
    assert "List should have at least 1 item" in config_error(BotFilter, user_agent_properties=[])


# --- sampling -----------------------------------------------------------------------------------------------------


def test_sampling_bucket_is_stable_across_processes() -> None:
    # A fixed value: Python's hash() would differ per process (PYTHONHASHSEED), this must not.
    assert bucket("user-1") == int(hashlib.sha256(b"user-1").hexdigest()[:16], 16) / 2**64
    assert 0 <= bucket("") < 1


async def test_sampling_by_distinct_id_keeps_whole_persons_at_about_the_rate() -> None:
    plugin = harness(Sampling, rate=0.25)
    people = [f"person-{i}" for i in range(4000)]
    results = await plugin.run(*(make_event(distinct_id=p) for p in people))
    chosen = {p for p, out in zip(people, results, strict=True) if out is not None}
    assert 900 < len(chosen) < 1100
    assert plugin.dropped == ["sampled_out"] * (len(people) - len(chosen))
    assert plugin.warnings == []  # sampling out is the point: no ingestion warning
    again = harness(Sampling, rate=0.25)
    for person in people[:200]:
        decisions = {out is not None for out in await again.run(*[make_event(distinct_id=person)] * 3)}
        assert decisions == {person in chosen}


async def test_sampling_by_uuid_and_only_some_events() -> None:
    by_uuid = harness(Sampling, rate=0.5, by="uuid")
    results = await by_uuid.run(*(make_event(distinct_id="one-person") for _ in range(200)))
    assert 0 < sum(out is not None for out in results) < 200
    only_pageviews = harness(Sampling, rate=0.000001, events=["$page*"])
    assert not await kept(only_pageviews, make_event("$pageview"))
    assert await kept(only_pageviews, make_event("purchase"))
    assert await kept(harness(Sampling, rate=1), make_event())


def test_sampling_config_errors() -> None:
    assert "rate\n  Field required" in config_error(Sampling)
    assert "Input should be greater than 0" in config_error(Sampling, rate=0)
    assert "Input should be less than or equal to 1" in config_error(Sampling, rate=1.5)
    assert "Input should be 'distinct_id' or 'uuid'" in config_error(Sampling, rate=0.5, by="person")
    assert "events\n  List should have at least 1 item" in config_error(Sampling, rate=0.5, events=[])


# --- in the pipeline: enrichment reaches the person, before or after normalize ------------------------------------


class _NoProjects:
    async def resolve(self, token: str) -> None:
        return None


def _stage(type_: str, plugin: str | None) -> StageType:
    return stage_type(StageSpec(name="s", type=type_, plugin=plugin))


def _raw_event(**properties: Any) -> PipelineEvent:
    raw = RawEvent(uuid=str(uuidlib.uuid4()), event="$pageview", distinct_id="user-1", token="phc_test",
                   timestamp=1, now=1, sent_at=None, ip="1.2.3.4", properties=orjson.dumps(properties).decode(),
                   set=None, set_once=None, historical_migration=False, capture_warnings=[],
                   skip_person_processing=False)
    return PipelineEvent.from_raw(raw, "events_raw")


@pytest.mark.parametrize("geoip_after_normalize", [False, True], ids=["geoip_before", "geoip_after"])
async def test_user_agent_and_geoip_update_the_person(city_db: Path, geoip_after_normalize: bool) -> None:
    resources = StageResources.offline(projects=_NoProjects(), kv=lambda _: MemoryKeyValue())
    stages = [_stage("plugin", "user_agent").build("user_agent", {}, resources),
              _stage("plugin", "geoip").build("geoip", {"database_path": str(city_db)}, resources),
              _stage("normalize", None).build("normalize", {}, resources)]
    if geoip_after_normalize:
        stages.append(stages.pop(1))
    event = _raw_event(**{"$raw_user_agent": SAFARI_IPHONE})
    for stage in stages:
        await stage.start()
        [outcome] = await stage.process_batch([event])
        assert isinstance(outcome, Ok)
        await stage.close()
    found = event.properties
    assert (found["$ip"], found["$geoip_country_code"], found["$device_type"]) == ("1.2.3.4", "DE", "Mobile")
    assert (found["$set"]["$geoip_city_name"], found["$set"]["$browser"]) == ("Berlin", "Mobile Safari")
    assert (found["$set_once"]["$initial_geoip_city_name"], found["$set_once"]["$initial_os"]) == ("Berlin", "iOS")


# --- registration, topology errors, docs --------------------------------------------------------------------------


@pytest.mark.parametrize("plugin_cls", BUILTIN, ids=lambda p: p.name)
def test_builtins_resolve_by_name_as_plugins_and_stages(plugin_cls: type[Plugin[Any]]) -> None:
    assert plugin_cls.name == plugin_cls.__module__.rsplit(".", 1)[-1]
    assert resolve_plugin(plugin_cls.name) is plugin_cls
    kind = _stage("plugin", plugin_cls.name)
    assert kind.config is plugin_cls.Config
    assert kind.summary == (plugin_cls.__doc__ or "").strip().splitlines()[0]
    assert issubclass(plugin_cls.Config, PluginConfig)
    config = plugin_cls.Config.model_config
    assert (config.get("extra"), config.get("frozen")) == ("forbid", True)


def test_builtin_names_are_unique() -> None:
    names = [p.name for p in BUILTIN]
    assert len(set(names)) == len(names) == 6


PREAMBLE = """\
topics:
  events_raw: {}
  events_overflow: {}
  events_historical: {}
  events_dlq: {}
  ingestion_warnings: {}
  events_processed: {}
pipeline:
  sources: [events_raw]
  output: events_processed
  stages:
    - {name: resolve_project, type: resolve_project}
"""


def write_topology(path: Path, stages: str) -> Path:
    """A topology whose stages are resolve_project, ``stages`` (YAML list items; the first on line 13), prepare."""
    listed = textwrap.indent(textwrap.dedent(stages), "    ")
    path.write_text(f"{PREAMBLE}{listed}    - {{name: prepare, type: prepare}}\n")
    return path


def test_a_bad_plugin_config_key_in_a_topology_has_a_location(tmp_path: Path) -> None:
    path = write_topology(tmp_path / "topology.yaml", """\
        - name: geoip
          type: plugin
          plugin: geoip
          config: {database_path: /var/lib/GeoLite2-City.mmdb, langauge: de}
        - name: pii
          type: plugin
          plugin: property_filter
          config:
            hash: [email]
        """)
    with pytest.raises(TopologyError) as caught:
        load_topology(path, [component_problems])
    assert [p.removeprefix(f"{path}:") for p in caught.value.problems] == [
        "16:60 pipeline.stages[1].config.langauge: unknown key 'langauge': did you mean 'language'?",
        "20:7 pipeline.stages[2].config: Value error, `salt` is required when `hash` or `hash_distinct_id` is set",
    ]


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "")
    text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)
    return re.sub(r"\b(?:[a-z_]+\.)+([A-Z]\w*)", r"\1", text).replace("|", "\\|")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return "empty" if value in ([], {}) else f"`{value!r}`"


def settings_table(model: type[BaseModel]) -> list[str]:
    """The settings table docs/plugins-builtin.md has for ``model``, from its fields."""
    return ["| key | type | default | description |", "|---|---|---|---|"] + [
        f"| `{name}` | `{_type(field)}` | {_default(field)} | {field.description} |"
        for name, field in model.model_fields.items()]


@pytest.mark.parametrize("model", [*(p.Config for p in BUILTIN), Rule, Match],
                         ids=lambda m: m.__qualname__)
def test_the_docs_list_every_setting_as_the_models_describe_it(model: type[BaseModel]) -> None:
    docs = (ROOT / "docs" / "plugins-builtin.md").read_text()
    table = "\n".join(settings_table(model))
    assert table in docs, f"docs/plugins-builtin.md: the settings table of {model.__qualname__} is stale:\n{table}"


def test_the_docs_yaml_snippets_are_valid_stages() -> None:
    docs = (ROOT / "docs" / "plugins-builtin.md").read_text()
    snippets = re.findall(r"```yaml\n(.*?)```", docs, flags=re.DOTALL)
    stages = [stage for snippet in snippets for stage in yaml.safe_load(textwrap.dedent(snippet).replace(
        "stages:\n", "", 1)) if stage["type"] == "plugin"]
    assert sorted({stage["plugin"] for stage in stages}) == sorted(p.name for p in BUILTIN)
    for stage in stages:
        _stage("plugin", stage["plugin"]).config.model_validate(stage.get("config", {}))
