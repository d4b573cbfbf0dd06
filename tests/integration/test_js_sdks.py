"""The JavaScript SDKs against the gateway: posthog-node for real, posthog-js by replaying its wire formats.

posthog-node runs in Node (``tests/node/send_node.mjs``) in both of its capture modes; every
posthog-js format the gateway must accept, from the current raw-gzip ``text/plain`` body back to
the legacy ``data=`` forms, ``lz64``, ``offset`` timestamps and sendBeacon, is replayed with
httpx byte for byte. Each case checks the answer and the raw events in the capture topic.
(``test_posthog_js_browser.py`` runs the real posthog-js in Chromium.)
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from capture_gateway.lzstring import compress_to_base64
from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.support import ROOT
from tests.support.kafka import read_topic
from tests.support.processes import StartGateway
from tests.support.topology import Pipeline

NODE_DIR = ROOT / "tests" / "node"
JS_VERSION = "1.449.2"
LIB_KEYS = ("$lib", "$lib_version")


def node_binary(*packages: str) -> str:
    """``node``, with the npm packages the test needs installed; fails (never skips) otherwise."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `make setup` (it installs nodejs and npm)")
    for package in packages:
        if not (NODE_DIR / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"{package} is not installed in tests/node: run `make setup` (npm ci --prefix tests/node)")
    return node


def landed(stack: Endpoints, pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """Every raw event in the pipeline's capture topic, by uuid."""
    topic = pipeline.topology.capture.topic
    records = read_topic(stack.kafka, topic, pipeline.topology.topics[topic].partitions)
    events = [event for record in records for event in record.events]
    by_uuid = {event["uuid"]: event for event in events}
    assert len(by_uuid) == len(events), "an event was written twice"
    return by_uuid


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


# --- posthog-node ----------------------------------------------------------------------------------


Json = dict[str, Any]


def run_node_sdk(gateway_url: str, token: str, count: int, run: str, mode: str) -> tuple[list[Json], dict[str, Json]]:
    """Run ``send_node.mjs``; the HTTP requests it made and the events it flushed, by uuid."""
    node = node_binary("posthog-node")
    env = {k: v for k, v in os.environ.items() if k != "POSTHOG_CAPTURE_MODE"}
    if mode != "default":
        env["POSTHOG_CAPTURE_MODE"] = mode
    try:
        result = subprocess.run([node, "send_node.mjs", gateway_url, token, str(count), run], cwd=NODE_DIR, env=env,
                                capture_output=True, text=True, timeout=45, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"posthog-node did not finish within 45 s:\n{exc.stdout!r}\n{exc.stderr!r}")
    assert result.returncode == 0, f"posthog-node failed:\n{result.stdout}\n{result.stderr}"
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["kind"] == "request"]
    sent = {line["uuid"]: line for line in lines if line["kind"] == "sent"}
    return requests, sent


@pytest.mark.parametrize("mode", ["default", "v1"])
def test_posthog_node_events_land_in_kafka(stack: Endpoints, pipeline: Pipeline, project: Project,
                                           start_gateway: StartGateway,
                                           mode: str) -> None:
    """posthog-node's captures (with groups), identify, alias and groupIdentify arrive intact.

    ``default`` is its gzipped ``POST /batch/``; ``v1`` (``POSTHOG_CAPTURE_MODE=v1``, read by
    posthog-node 5.70 in ``dist/capture-v1/config.mjs``) is gzipped ``POST /i/v1/analytics/events``.
    """
    gateway = start_gateway(pipeline)
    run = uuid.uuid4().hex[:8]
    count = 25
    before = time.time()
    requests, sent = run_node_sdk(gateway.url, project.api_token, count, run, mode)
    after = time.time()

    # the wire: the path and encoding the SDK chose, every answer a success
    expected_path = "/i/v1/analytics/events" if mode == "v1" else "/batch/"
    assert requests, "posthog-node sent nothing"
    for request in requests:
        assert (request["method"], request["path"], request["status"]) == ("POST", expected_path, 200), request
        assert request["encoding"] == "gzip", request
    assert len(sent) == count + 3

    events = landed(stack, pipeline)
    assert set(events) == set(sent)
    for event_uuid, message in sent.items():
        event = events[event_uuid]
        assert event["event"] == message["event"]
        assert event["distinct_id"] == message["distinct_id"]
        assert event["token"] == project.api_token
        assert event["ip"] == "127.0.0.1"
        assert before - 5 <= event["timestamp"] / 1e6 <= after + 5, (event["timestamp"], before, after)
        assert abs(event["timestamp"] - event["now"]) < 30_000_000
        assert event["capture_warnings"] == []
        properties = json.loads(event["properties"])
        # everything the SDK put in the event's properties arrives unchanged ($lib: see below)
        assert {k: v for k, v in properties.items() if k not in LIB_KEYS} == \
               {k: v for k, v in message["properties"].items() if k not in LIB_KEYS}

    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events.values():
        by_name.setdefault(event["event"], []).append(event)
    captures = by_name["node_event"] + by_name["node_other_event"]
    assert sorted(json.loads(e["properties"])["i"] for e in captures) == list(range(count))
    for event in captures:
        properties = json.loads(event["properties"])
        i = properties["i"]
        assert event["distinct_id"] == f"node-{run}-{i % 3}"
        assert (properties["run"], properties["plan"], properties["nested"]) == (run, "pro", {"ok": True})
        assert properties.get("$groups") == ({"company": f"acme-{run}"} if i % 4 == 0 else None)

    [identify] = by_name["$identify"]
    assert identify["distinct_id"] == f"node-{run}-0"
    assert json.loads(identify["properties"])["$set"] == {"email": f"zero-{run}@example.com"}
    [alias] = by_name["$create_alias"]
    assert alias["distinct_id"] == f"node-{run}-0"
    assert json.loads(alias["properties"])["alias"] == f"alias-{run}"
    [group] = by_name["$groupidentify"]
    assert group["distinct_id"] == f"$company_acme-{run}"
    group_properties = json.loads(group["properties"])
    assert (group_properties["$group_type"], group_properties["$group_key"]) == ("company", f"acme-{run}")
    assert group_properties["$group_set"] == {"name": "Acme"}

    # In v1 mode the SDK strips $lib from properties and sends PostHog-Sdk-Info; the gateway puts it back.
    libraries = {json.loads(e["properties"]).get("$lib") for e in events.values()}
    assert libraries == {"posthog-node"}


# --- posthog-js wire formats -------------------------------------------------------------------------


def js_event(token: str, distinct_id: str, name: str, **fields: Any) -> dict[str, Any]:
    """An event as posthog-js builds it: token and distinct_id only inside properties."""
    properties = {"token": token, "distinct_id": distinct_id, "$lib": "web", "$lib_version": JS_VERSION,
                  "$current_url": "http://127.0.0.1/page", "n": 1, "über": "ünïcode ✓"}
    properties.update(fields.pop("properties", {}))
    return {"uuid": str(uuid.uuid4()), "event": name, "properties": properties, **fields}


def assert_landed(stack: Endpoints, pipeline: Pipeline, token: str, sent: list[dict[str, Any]]) -> dict[str, Any]:
    """Every sent event is in the capture topic with its distinct_id, name and properties; returns them."""
    events = landed(stack, pipeline)
    assert set(events) == {e["uuid"] for e in sent}
    for message in sent:
        event = events[message["uuid"]]
        assert event["event"] == message["event"]
        assert event["distinct_id"] == message["properties"]["distinct_id"]
        assert event["token"] == token
        assert json.loads(event["properties"]) == message["properties"]
        assert event["capture_warnings"] == []
        assert abs(event["now"] / 1e6 - time.time()) < 60
    return events


def ok(response: httpx.Response, status: int = 200) -> None:
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {"status": "Ok"}


def test_current_posthog_js_raw_gzip_text_plain(stack: Endpoints, pipeline: Pipeline, project: Project,
                                                start_gateway: StartGateway) -> None:
    """posthog-js ≥ 1.398: ``/e/`` with raw gzip as text/plain, no compression hint, {api_key, batch, sent_at}."""
    gateway = start_gateway(pipeline)
    sent_at = datetime.now(UTC)
    sent = [js_event(project.api_token, "browser-1", "$pageview", timestamp=iso(sent_at - timedelta(seconds=2))),
            js_event(project.api_token, "browser-1", "clicked", timestamp=iso(sent_at - timedelta(seconds=1)),
                     properties={"$set": {"plan": "pro"}}),
            js_event(project.api_token, "browser-2", "$autocapture", timestamp=iso(sent_at))]
    body = gzip.compress(json.dumps({"api_key": project.api_token, "batch": sent, "sent_at": iso(sent_at)}).encode())
    response = httpx.post(f"{gateway.url}/e/", params={"ip": "0", "_": str(int(sent_at.timestamp() * 1000)),
                                                       "ver": JS_VERSION},
                          content=body, headers={"Content-Type": "text/plain"}, timeout=10)
    ok(response)
    events = assert_landed(stack, pipeline, project.api_token, sent)
    sent_at_micros = micros(datetime.fromisoformat(iso(sent_at)))  # as sent: milliseconds
    for message in sent:
        event = events[message["uuid"]]
        # clock-skew correction: now + (timestamp - sent_at)
        timestamp = micros(datetime.fromisoformat(message["timestamp"]))
        assert event["timestamp"] == event["now"] + timestamp - sent_at_micros
        assert event["sent_at"] == sent_at_micros


def test_legacy_gzip_js_bare_array_with_offsets(stack: Endpoints, pipeline: Pipeline, project: Project,
                                                start_gateway: StartGateway) -> None:
    """Old posthog-js: ``/e/?compression=gzip-js&ip=1&_=<ms>&ver=1.130.0``, a gzipped bare array using ``offset``."""
    gateway = start_gateway(pipeline)
    offsets = [0, 1_500, 120_000]
    sent = [js_event(project.api_token, f"legacy-{i}", "$pageview", offset=offset) for i, offset in enumerate(offsets)]
    ms = int(time.time() * 1000)
    response = httpx.post(f"{gateway.url}/e/?compression=gzip-js&ip=1&_={ms}&ver=1.130.0",
                          content=gzip.compress(json.dumps(sent).encode()),
                          headers={"Content-Type": "text/plain"}, timeout=10)
    received = time.time()
    ok(response)
    events = assert_landed(stack, pipeline, project.api_token, sent)
    for message in sent:
        event = events[message["uuid"]]
        assert event["timestamp"] == event["now"] - message["offset"] * 1000
        assert abs(event["timestamp"] / 1e6 - (received - message["offset"] / 1000)) < 5
        assert event["ip"] == "127.0.0.1"


def test_gzip_js_hint_on_an_uncompressed_base64_form(stack: Endpoints, pipeline: Pipeline, project: Project,
                                                     start_gateway: StartGateway) -> None:
    """posthog-js 1.78.5: ``/e/?compression=gzip-js&ip=1&_=<ms>&ver=1.78.5`` whose form body ``data=<base64
    JSON>`` is not compressed at all. PostHog accepts it; a 400 here would lose the events (the SDK retries)."""
    gateway = start_gateway(pipeline)
    sent = [js_event(project.api_token, "hinted-1", "$pageview"), js_event(project.api_token, "hinted-2", "clicked")]
    data = quote(base64.b64encode(json.dumps(sent).encode()).decode(), safe="")
    response = httpx.post(f"{gateway.url}/e/?compression=gzip-js&ip=1&_={int(time.time() * 1000)}&ver=1.78.5",
                          content=f"data={data}".encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    ok(response)
    assert_landed(stack, pipeline, project.api_token, sent)


def _base64_with_plus(events: list[dict[str, Any]]) -> str:
    """base64 of the events' JSON, with a filler property that puts '+' and '/' in it (forms mangle '+')."""
    for shift in range(3):
        events[0]["properties"]["filler"] = "~" * shift + "~~~???"
        encoded = base64.b64encode(json.dumps(events).encode()).decode()
        if "+" in encoded and "/" in encoded:
            return encoded
    raise AssertionError("no filler gave a '+' and a '/' in the base64")


@pytest.mark.parametrize("plus", ["escaped", "raw"], ids=["plus-as-%2B", "plus-as-space"])
def test_legacy_base64_data_form(stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
                                 plus: str) -> None:
    """``data=<urlencoded base64>`` forms with ``compression=base64``; a bare '+' becomes a space in forms."""
    gateway = start_gateway(pipeline)
    sent = [js_event(project.api_token, "form-1", "$pageview"), js_event(project.api_token, "form-2", "clicked")]
    encoded = _base64_with_plus(sent)
    data = quote(encoded, safe="") if plus == "escaped" else encoded
    response = httpx.post(f"{gateway.url}/e/?ip=1&_={int(time.time() * 1000)}&ver=1.30.0",
                          content=f"data={data}&compression=base64".encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    ok(response)
    assert_landed(stack, pipeline, project.api_token, sent)


def test_legacy_lz64(stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway) -> None:
    """``compression=lz64``: lz-string's compressToBase64 in a ``data=`` form (posthog-js before gzip-js)."""
    gateway = start_gateway(pipeline)
    sent = [js_event(project.api_token, "lz-1", "$pageview"),
            js_event(project.api_token, "lz-1", "$autocapture", properties={"$elements": [{"tag_name": "a"}] * 20})]
    data = quote(compress_to_base64(json.dumps(sent)), safe="")
    response = httpx.post(f"{gateway.url}/e/?compression=lz64&ip=1&_={int(time.time() * 1000)}",
                          content=f"data={data}".encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    ok(response)
    assert_landed(stack, pipeline, project.api_token, sent)


def test_send_beacon_answers_204(stack: Endpoints, pipeline: Pipeline, project: Project,
                                 start_gateway: StartGateway) -> None:
    """On unload posthog-js uses navigator.sendBeacon with ``beacon=1``: the answer is 204, the events land."""
    gateway = start_gateway(pipeline)
    sent = [js_event(project.api_token, "leaving", "$pageleave", timestamp=iso(datetime.now(UTC)))]
    body = gzip.compress(json.dumps({"api_key": project.api_token, "batch": sent,
                                     "sent_at": iso(datetime.now(UTC))}).encode())
    response = httpx.post(f"{gateway.url}/e/?ip=0&_={int(time.time() * 1000)}&ver={JS_VERSION}&beacon=1",
                          content=body, headers={"Content-Type": "text/plain"}, timeout=10)
    ok(response, 204)
    assert response.content == b""
    assert_landed(stack, pipeline, project.api_token, sent)


def test_single_event_object_to_i_v0_e(stack: Endpoints, pipeline: Pipeline, project: Project,
                                       start_gateway: StartGateway) -> None:
    """One event object, not an array, to ``/i/v0/e/`` (posthog-js with request batching off)."""
    gateway = start_gateway(pipeline)
    event = js_event(project.api_token, "single", "signed_up", timestamp=iso(datetime.now(UTC)),
                     properties={"$set_once": {"first": True}})
    response = httpx.post(f"{gateway.url}/i/v0/e/", params={"ip": "1", "_": str(int(time.time() * 1000))},
                          content=gzip.compress(json.dumps(event).encode()),
                          headers={"Content-Type": "text/plain"}, timeout=10)
    ok(response)
    assert_landed(stack, pipeline, project.api_token, [event])


def test_get_with_base64_data(stack: Endpoints, pipeline: Pipeline, project: Project,
                              start_gateway: StartGateway) -> None:
    """``GET /e/?data=<base64>`` (image-pixel fallback of old posthog-js), a single event and an array."""
    gateway = start_gateway(pipeline)
    one = js_event(project.api_token, "pixel", "$pageview")
    many = [js_event(project.api_token, "pixel", "clicked"), js_event(project.api_token, "pixel-2", "clicked")]
    for payload in (one, many):
        data = base64.b64encode(json.dumps(payload).encode()).decode()
        response = httpx.get(f"{gateway.url}/e/", params={"data": data, "ip": "1", "_": str(int(time.time() * 1000))},
                             timeout=10)
        ok(response)
    assert_landed(stack, pipeline, project.api_token, [one, *many])


def test_cors_mirrors_the_origin_with_credentials(pipeline: Pipeline, project: Project,
                                                  start_gateway: StartGateway) -> None:
    """A page on another origin: preflight and actual requests mirror the origin and allow credentials."""
    gateway = start_gateway(pipeline)
    origin = "http://localhost:5173"
    for path in ("/e/", "/i/v0/e/", "/batch/", "/flags/?v=2", "/decide/?v=3", "/i/v1/analytics/events"):
        preflight = httpx.options(f"{gateway.url}{path}", timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-posthog-custom"})
        assert preflight.status_code == 200, (path, preflight.text)
        assert preflight.headers["access-control-allow-origin"] == origin, path
        assert preflight.headers["access-control-allow-credentials"] == "true", path
        allowed_headers = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert {"content-type", "x-posthog-custom"} <= allowed_headers, path
        assert "POST" in preflight.headers["access-control-allow-methods"], path

    event = js_event(project.api_token, "cors", "$pageview")
    response = httpx.post(f"{gateway.url}/e/", content=gzip.compress(json.dumps([event]).encode()), timeout=10,
                          headers={"Origin": origin, "Content-Type": "text/plain"})
    ok(response)
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"


def test_flags_decide_and_remote_config(project: Project, pipeline: Pipeline, start_gateway: StartGateway) -> None:
    """posthog-js start-up calls answer with no flags and a ``supportedCompression`` containing gzip-js."""
    gateway = start_gateway(pipeline)
    token = project.api_token
    flags_body = {"token": token, "distinct_id": "d", "groups": {}, "person_properties": {}, "timezone": "UTC"}
    answers = [
        httpx.post(f"{gateway.url}/flags/?v=2&config=true", json=flags_body, timeout=10),
        httpx.post(f"{gateway.url}/flags/?v=2", content=gzip.compress(json.dumps(flags_body).encode()),
                   headers={"Content-Type": "text/plain"}, timeout=10),
        httpx.post(f"{gateway.url}/decide/?v=3", timeout=10,
                   content=f"data={quote(base64.b64encode(json.dumps(flags_body).encode()).decode())}".encode(),
                   headers={"Content-Type": "application/x-www-form-urlencoded"}),
        httpx.get(f"{gateway.url}/decide/", params={"v": "3", "token": token}, timeout=10),
    ]
    for response in answers:
        assert response.status_code == 200, (response.request.url, response.text)
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert "gzip-js" in body["supportedCompression"]
        assert body.get("featureFlags", {}) == {}

    config = httpx.get(f"{gateway.url}/array/{token}/config", timeout=10)
    assert config.status_code == 200
    assert "gzip-js" in config.json()["supportedCompression"]

    script = httpx.get(f"{gateway.url}/array/{token}/config.js", timeout=10)
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "window._POSTHOG_REMOTE_CONFIG" in script.text
    # run it as a browser would and read what it defined
    node = node_binary()
    evaluate = ("const vm = require('node:vm'); const ctx = {window: {}};"
                "vm.runInNewContext(require('node:fs').readFileSync(0, 'utf8'), ctx);"
                "process.stdout.write(JSON.stringify(ctx.window._POSTHOG_REMOTE_CONFIG));")
    result = subprocess.run([node, "-e", evaluate], input=script.text, capture_output=True, text=True, timeout=20,
                            check=False)
    assert result.returncode == 0, result.stderr
    defined = json.loads(result.stdout)
    assert set(defined) == {token}
    assert "gzip-js" in defined[token]["config"]["supportedCompression"]
