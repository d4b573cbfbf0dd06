"""The built-in plugins: each one's behaviour and config errors, their registration, and their docs."""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import textwrap
import uuid as uuidlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from headwater.errors import TopologyError
from headwater.runtime.topology import StageSpec, load_topology
from schemas.events import RawEvent
from streams.components import component_problems, stage_type
from streams.errors import StageError
from streams.event import PipelineEvent
from streams.plugins.api import Event, Plugin, PluginContext
from streams.plugins.builtin import BUILTIN
from streams.plugins.builtin.bot_filter import BotFilter
from streams.plugins.builtin.event_rules import EventRules, Match, Rule
from streams.plugins.builtin.geoip import GeoIP
from streams.plugins.builtin.property_filter import PropertyFilter
from streams.plugins.builtin.sampling import Sampling, bucket
from streams.plugins.builtin.user_agent import UserAgent, describe
from streams.plugins.kv import MemoryKeyValue
from streams.plugins.registry import resolve_plugin
from streams.stages.base import Ok, StageResources
from streams.stages.registry import StageType
from tests.conftest import ROOT

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


# --- a tiny harness: the plugin, its context and counted metrics, no services -----------------------------------


class Metrics:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, name: str, amount: float = 1.0) -> None:
        self.counts[name] += int(amount)


class Harness:
    def __init__(self, plugin_cls: type[Plugin[Any]], **config: Any) -> None:
        self.metrics = Metrics()
        validated = plugin_cls.Config.model_validate(config)
        self.ctx: PluginContext[Any] = PluginContext(config=validated, stage="test", log=logging.getLogger("test"),
                                                     kv=MemoryKeyValue(), metrics=self.metrics)
        self.plugin = plugin_cls(validated, self.ctx)

    async def run(self, event: Event) -> Event | None:
        result = self.plugin.process(event, self.ctx)
        return await result if inspect.isawaitable(result) else result

    async def passed(self, event: Event) -> Event:
        """The event the plugin returned; fails the test if it dropped it."""
        out = await self.run(event)
        assert out is not None, "the plugin dropped the event"
        return out

    async def props(self, **properties: Any) -> dict[str, Any]:
        return (await self.passed(make_event(properties=properties))).properties


def make_event(event: str = "$pageview", distinct_id: str = "user-1", properties: dict[str, Any] | None = None,
               **fields: Any) -> Event:
    return Event(uuid=fields.pop("uuid", str(uuidlib.uuid4())), event=event, distinct_id=distinct_id,
                 properties=dict(properties or {}), timestamp=datetime(2026, 1, 1, tzinfo=UTC), team_id=1, **fields)


def config_error(plugin_cls: type[Plugin[Any]], **config: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        plugin_cls.Config.model_validate(config)
    return str(caught.value)


# --- user_agent ---------------------------------------------------------------------------------------------------


async def test_user_agent_sets_browser_os_and_device_type() -> None:
    props = await Harness(UserAgent).props(**{"$raw_user_agent": CHROME_MAC})
    assert props == {"$raw_user_agent": CHROME_MAC, "$browser": "Chrome", "$browser_version": 120.0,
                     "$os": "Mac OS X", "$os_version": "10.15.7", "$device_type": "Desktop"}


@pytest.mark.parametrize(("ua", "browser", "os", "device_type"), [
    (SAFARI_IPHONE, "Mobile Safari", "iOS", "Mobile"),
    (SAFARI_IPAD, "Mobile Safari", "iOS", "Tablet"),
    (CHROME_ANDROID_PHONE, "Chrome Mobile", "Android", "Mobile"),
    (CHROME_ANDROID_TABLET, "Chrome", "Android", "Tablet"),
    (EDGE_WINDOWS, "Microsoft Edge", "Windows", "Desktop"),
])
async def test_user_agent_devices_and_posthog_names(ua: str, browser: str, os: str, device_type: str) -> None:
    props = await Harness(UserAgent).props(**{"$raw_user_agent": ua})
    assert (props["$browser"], props["$os"], props["$device_type"]) == (browser, os, device_type)


async def test_user_agent_keeps_what_the_sdk_set_unless_overwrite() -> None:
    given = {"$raw_user_agent": CHROME_MAC, "$browser": "Arc", "$device_type": "Desktop"}
    kept = await Harness(UserAgent).props(**given)
    assert (kept["$browser"], kept["$os"]) == ("Arc", "Mac OS X")
    replaced = await Harness(UserAgent, overwrite=True).props(**given)
    assert replaced["$browser"] == "Chrome"


async def test_user_agent_leaves_bots_missing_and_unknown_user_agents_alone() -> None:
    harness = Harness(UserAgent)
    assert await harness.props(**{"$raw_user_agent": GOOGLEBOT}) == {"$raw_user_agent": GOOGLEBOT}
    assert await harness.props(**{"$raw_user_agent": "???"}) == {"$raw_user_agent": "???"}
    assert await harness.props(**{"$raw_user_agent": 42}) == {"$raw_user_agent": 42}
    assert await harness.props(other=1) == {"other": 1}


async def test_user_agent_reads_the_configured_property_and_caches_parses() -> None:
    harness = Harness(UserAgent, source_property="ua")
    await harness.props(ua=SAFARI_IPHONE)
    hits = describe.cache_info().hits
    props = await harness.props(ua=SAFARI_IPHONE)
    assert props["$os_version"] == "17.1"
    assert describe.cache_info().hits == hits + 1


def test_user_agent_config_errors() -> None:
    assert "source_property" in config_error(UserAgent, source_property="")
    assert "Extra inputs are not permitted" in config_error(UserAgent, overwrite=True, colour="blue")


# --- geoip --------------------------------------------------------------------------------------------------------

BERLIN = {
    "city": {"names": {"en": "Berlin", "de": "Berlin"}},
    "continent": {"code": "EU", "names": {"en": "Europe"}},
    "country": {"iso_code": "DE", "names": {"en": "Germany", "de": "Deutschland"}},
    "location": {"latitude": 52.52, "longitude": 13.405, "accuracy_radius": 20, "time_zone": "Europe/Berlin"},
    "postal": {"code": "10115"},
    "subdivisions": [{"iso_code": "BE", "names": {"en": "Land Berlin"}}],
}
PARIS = {"city": {"names": {"en": "Paris"}}, "country": {"iso_code": "FR", "names": {"en": "France"}},
         "location": {"latitude": 48.85, "longitude": 2.35, "time_zone": "Europe/Paris"}}


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GeoLite2-City-shaped database: 1.2.3.0/24 is Berlin, 2001:db8::/32 is Paris."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"],
                        description="headwater test")
    writer.insert_network(IPSet(["1.2.3.0/24"]), BERLIN)
    writer.insert_network(IPSet(["2001:db8::/32"]), PARIS)
    path = tmp_path_factory.mktemp("geoip") / "city.mmdb"
    writer.to_db_file(str(path))
    return path


async def _geoip(db: Path, **config: Any) -> Harness:
    harness = Harness(GeoIP, database_path=str(db), **config)
    await harness.plugin.setup()
    return harness


async def test_geoip_sets_event_and_person_properties(city_db: Path) -> None:
    harness = await _geoip(city_db)
    out = await harness.passed(make_event(properties={"$ip": "1.2.3.4"}))
    expected = {
        "$geoip_city_name": "Berlin", "$geoip_country_name": "Germany", "$geoip_country_code": "DE",
        "$geoip_continent_name": "Europe", "$geoip_continent_code": "EU", "$geoip_postal_code": "10115",
        "$geoip_latitude": 52.52, "$geoip_longitude": 13.405, "$geoip_accuracy_radius": 20,
        "$geoip_time_zone": "Europe/Berlin", "$geoip_subdivision_1_code": "BE",
        "$geoip_subdivision_1_name": "Land Berlin",
    }
    assert out.properties == {"$ip": "1.2.3.4", **expected}
    assert out.set == expected
    assert out.set_once == {k.replace("$geoip_", "$initial_geoip_"): v for k, v in expected.items()}
    await harness.plugin.close()


async def test_geoip_ipv6_mapped_addresses_the_capture_ip_and_language(city_db: Path) -> None:
    harness = await _geoip(city_db, language="de", set_person_properties=False)
    paris = await harness.props(**{"$ip": "2001:db8::1"})
    assert (paris["$geoip_country_code"], paris["$geoip_time_zone"]) == ("FR", "Europe/Paris")
    assert "$geoip_country_name" not in paris  # the record has no German name
    mapped = await harness.props(**{"$ip": "::ffff:1.2.3.9"})
    assert mapped["$geoip_country_name"] == "Deutschland"
    from_capture = await harness.passed(make_event(ip="1.2.3.4"))
    assert from_capture.properties["$geoip_city_name"] == "Berlin"
    assert (from_capture.set, from_capture.set_once) == ({}, {})


async def test_geoip_skips_misses_bad_addresses_and_geoip_disable(city_db: Path) -> None:
    harness = await _geoip(city_db)
    for props in ({"$ip": "9.9.9.9"}, {"$ip": "not an ip"}, {"$ip": "1.2.3.4", "$geoip_disable": True}, {}):
        out = await harness.passed(make_event(properties=props))
        assert (out.properties, out.set, out.set_once) == (props, {}, {})


async def test_geoip_keeps_person_properties_the_event_sets(city_db: Path) -> None:
    harness = await _geoip(city_db)
    event = make_event(properties={"$ip": "1.2.3.4"}, set={"$geoip_city_name": "Potsdam"})
    out = await harness.passed(event)
    assert (out.set["$geoip_city_name"], out.properties["$geoip_city_name"]) == ("Potsdam", "Berlin")


async def test_geoip_setup_names_a_missing_or_invalid_database(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mmdb"
    with pytest.raises(StageError, match=f"database_path {re.escape(str(missing))} does not exist"):
        await Harness(GeoIP, database_path=str(missing)).plugin.setup()
    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a database")
    with pytest.raises(StageError, match=r"cannot open database_path .*garbage\.mmdb"):
        await Harness(GeoIP, database_path=str(garbage)).plugin.setup()


def test_geoip_config_errors() -> None:
    assert "database_path\n  Field required" in config_error(GeoIP)
    assert "Extra inputs are not permitted" in config_error(GeoIP, database_path="/x.mmdb", database="/y.mmdb")


# --- property_filter ----------------------------------------------------------------------------------------------


def _sha(salt: str, text: str) -> str:
    return hashlib.sha256((salt + text).encode()).hexdigest()


async def test_property_filter_drops_by_name_and_glob() -> None:
    harness = Harness(PropertyFilter, drop=["password", "secret_*"])
    props = await harness.props(password="x", secret_a=1, secret_b=2, secrets=3, page="/")
    assert props == {"secrets": 3, "page": "/"}


async def test_property_filter_keep_keeps_posthog_properties_unless_told_not_to() -> None:
    given = {"plan": "pro", "page": "/", "email": "a@b.c", "$browser": "Chrome", "$set": {"email": "a@b.c"}}
    kept = await Harness(PropertyFilter, keep=["p*"]).props(**given)
    assert kept == {"plan": "pro", "page": "/", "$browser": "Chrome", "$set": {}}
    strict = await Harness(PropertyFilter, keep=["plan", "email"], keep_posthog_properties=False).props(**given)
    assert strict == {"plan": "pro", "email": "a@b.c", "$set": {"email": "a@b.c"}}


async def test_property_filter_hashes_event_and_person_properties_and_the_distinct_id() -> None:
    harness = Harness(PropertyFilter, hash=["email", "*_id"], salt="pepper", hash_distinct_id=True)
    event = make_event(distinct_id="user-1", properties={
        "email": "a@b.c", "org_id": 42, "tags": None, "page": "/", "$set_once": {"email": "a@b.c"}},
        set={"email": "a@b.c", "name": "A"})
    out = await harness.passed(event)
    assert out.properties == {"email": _sha("pepper", "a@b.c"), "org_id": _sha("pepper", "42"), "tags": None,
                              "page": "/", "$set_once": {"email": _sha("pepper", "a@b.c")}}
    assert out.set == {"email": _sha("pepper", "a@b.c"), "name": "A"}
    assert out.distinct_id == _sha("pepper", "user-1")


def test_property_filter_config_errors() -> None:
    assert "`salt` is required" in config_error(PropertyFilter, hash=["email"])
    assert "`salt` is required" in config_error(PropertyFilter, hash_distinct_id=True, salt="")
    assert "drop\n  Input should be a valid list" in config_error(PropertyFilter, drop="email")
    config = PropertyFilter.Config.model_validate({"hash": ["email"], "salt": "pepper"})
    assert "pepper" not in repr(config)


# --- event_rules --------------------------------------------------------------------------------------------------


async def test_event_rules_first_matching_rule_wins() -> None:
    harness = Harness(EventRules, rules=[
        {"match": {"event": "$pageview", "property": {"$current_url": "https://x.test/health"}}, "action": "drop"},
        {"match": {"event": "legacy_*"}, "action": "rename", "rename_to": "modern"},
        {"match": {"event": "legacy_signup"}, "action": "drop"},
        {"match": {"property": {"internal": True}}, "action": "drop"},
    ])
    assert await harness.run(make_event("$pageview", properties={"$current_url": "https://x.test/health"})) is None
    kept = await harness.passed(make_event("$pageview", properties={"$current_url": "https://x.test/"}))
    assert kept.event == "$pageview"
    assert (await harness.passed(make_event("legacy_signup"))).event == "modern"
    assert await harness.run(make_event("anything", properties={"internal": True})) is None
    untouched = await harness.passed(make_event("anything", properties={"internal": False}))
    assert untouched.event == "anything"


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
async def test_bot_filter_drops_and_counts_bots(ua: str) -> None:
    harness = Harness(BotFilter)
    assert await harness.run(make_event(properties={"$raw_user_agent": ua})) is None
    assert harness.metrics.counts == {"bot_dropped": 1}


@pytest.mark.parametrize("ua", [CHROME_MAC, SAFARI_IPHONE, CUBOT_PHONE, EDGE_WINDOWS])
async def test_bot_filter_passes_browsers(ua: str) -> None:
    harness = Harness(BotFilter)
    assert await harness.props(**{"$raw_user_agent": ua}) == {"$raw_user_agent": ua}
    assert harness.metrics.counts == {}


async def test_bot_filter_tag_properties_and_own_patterns() -> None:
    tagger = Harness(BotFilter, action="tag")
    assert await tagger.props(**{"$useragent": GOOGLEBOT}) == {"$useragent": GOOGLEBOT, "$is_bot": True}
    assert tagger.metrics.counts == {"bot_tagged": 1}
    assert await tagger.props(ua=GOOGLEBOT) == {"ua": GOOGLEBOT}  # not a user agent property
    custom = Harness(BotFilter, user_agent_properties=["ua"], extra_patterns=["^internal-probe/"],
                     allow_patterns=[r"googlebot/2\.1"])
    assert await custom.run(make_event(properties={"ua": "internal-probe/1.0"})) is None
    assert await custom.props(ua=GOOGLEBOT) == {"ua": GOOGLEBOT}
    assert await custom.props(**{"$raw_user_agent": "curl/8"}) == {"$raw_user_agent": "curl/8"}


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
    harness = Harness(Sampling, rate=0.25)
    people = [f"person-{i}" for i in range(4000)]
    kept = [p for p in people if await harness.run(make_event(distinct_id=p)) is not None]
    assert 900 < len(kept) < 1100
    assert harness.metrics.counts["sampled_out"] == len(people) - len(kept)
    again = Harness(Sampling, rate=0.25)
    for person in people[:200]:
        decisions = {await again.run(make_event(distinct_id=person)) is not None for _ in range(3)}
        assert decisions == {person in kept}


async def test_sampling_by_uuid_and_only_some_events() -> None:
    by_uuid = Harness(Sampling, rate=0.5, by="uuid")
    kept = [await by_uuid.run(make_event(distinct_id="one-person")) is not None for _ in range(200)]
    assert 0 < sum(kept) < 200
    only_pageviews = Harness(Sampling, rate=0.000001, events=["$page*"])
    assert await only_pageviews.run(make_event("$pageview")) is None
    assert await only_pageviews.run(make_event("purchase")) is not None
    assert await Harness(Sampling, rate=1).run(make_event()) is not None


def test_sampling_config_errors() -> None:
    assert "rate\n  Field required" in config_error(Sampling)
    assert "Input should be greater than 0" in config_error(Sampling, rate=0)
    assert "Input should be less than or equal to 1" in config_error(Sampling, rate=1.5)
    assert "Input should be 'distinct_id' or 'uuid'" in config_error(Sampling, rate=0.5, by="person")
    assert "events\n  List should have at least 1 item" in config_error(Sampling, rate=0.5, events=[])


# --- in the pipeline: enrichment before normalize reaches the person ----------------------------------------------


class _NoProjects:
    async def resolve(self, token: str) -> None:
        return None


def _stage(type_: str, plugin: str | None) -> StageType:
    return stage_type(StageSpec(name="s", type=type_, plugin=plugin))


async def test_user_agent_and_geoip_before_normalize_update_the_person(city_db: Path) -> None:
    resources = StageResources(projects=_NoProjects(), kv=lambda _: MemoryKeyValue())
    stages = [_stage("plugin", "user_agent").build("user_agent", {}, resources),
              _stage("plugin", "geoip").build("geoip", {"database_path": str(city_db)}, resources),
              _stage("normalize", None).build("normalize", {}, resources)]
    raw = RawEvent(uuid=str(uuidlib.uuid4()), event="$pageview", distinct_id="user-1", token="phc_test",
                   timestamp=1, now=1, sent_at=None, ip="1.2.3.4", properties=orjson.dumps(
                       {"$raw_user_agent": SAFARI_IPHONE}).decode(), set=None, set_once=None,
                   historical_migration=False, capture_warnings=[], skip_person_processing=False)
    event = PipelineEvent.from_raw(raw, "events_raw")
    for stage in stages:
        assert isinstance(await stage.process(event), Ok)
        await stage.close()
    props = event.properties
    assert (props["$ip"], props["$geoip_country_code"], props["$device_type"]) == ("1.2.3.4", "DE", "Mobile")
    assert (props["$set"]["$geoip_city_name"], props["$set"]["$browser"]) == ("Berlin", "Mobile Safari")
    assert (props["$set_once"]["$initial_geoip_city_name"], props["$set_once"]["$initial_os"]) == ("Berlin", "iOS")


# --- registration, topology errors, docs --------------------------------------------------------------------------


@pytest.mark.parametrize("plugin_cls", BUILTIN, ids=lambda p: p.name)
def test_builtins_resolve_by_name_as_plugins_and_stages(plugin_cls: type[Plugin[Any]]) -> None:
    assert plugin_cls.name == plugin_cls.__module__.rsplit(".", 1)[-1]
    assert resolve_plugin(plugin_cls.name) is plugin_cls
    kind = _stage("plugin", plugin_cls.name)
    assert kind.config is plugin_cls.Config
    assert kind.summary == (plugin_cls.__doc__ or "").strip().splitlines()[0]
    config = plugin_cls.Config.model_config
    assert (config.get("extra"), config.get("frozen")) == ("forbid", True)


def test_builtin_names_are_unique() -> None:
    names = [p.name for p in BUILTIN]
    assert len(set(names)) == len(names) == 6


def test_a_bad_plugin_config_key_in_a_topology_has_a_location(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("""\
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
    - name: geoip
      type: plugin
      plugin: geoip
      config: {database_path: /var/lib/GeoLite2-City.mmdb, langauge: de}
    - name: pii
      type: plugin
      plugin: property_filter
      config:
        hash: [email]
    - {name: prepare, type: prepare}
""")
    with pytest.raises(TopologyError) as caught:
        load_topology(path, [component_problems])
    assert [p.removeprefix(f"{path}:") for p in caught.value.problems] == [
        "16:60 pipeline.stages[1].config.langauge: unknown key 'langauge'",
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
