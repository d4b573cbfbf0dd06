"""The real posthog-js in headless Chromium: a page on one origin sends to the gateway on another.

The page is served from 127.0.0.1 by a tiny HTTP server of the test's own and loads posthog-js's
browser bundle from ``tests/node/node_modules``; the gateway listens on another port, so every
call is cross-origin and needs the gateway's CORS answers. ``tests/node/browser.mjs`` drives the
system Chromium with playwright-core and reports the page's traffic; the test waits (with a
deadline) until the automatic ``$pageview`` and the page's own events are in the capture topic.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from tests.integration.test_js_sdks import NODE_DIR, landed, node_binary
from tests.support.processes import StartGateway
from tests.support.topology import Pipeline
from tests.support.waiting import WaitTimeout, wait_until

CHROMIUM = Path("/usr/bin/chromium")
DIST = NODE_DIR / "node_modules" / "posthog-js" / "dist"
# array.js: what the snippet loads from the CDN; it loads /array/<token>/config.js from api_host as a
# script and its extensions (surveys, ...) from <api_host>/static/, which Headwater does not serve.
# array.full.no-external.js: every extension built in, loads no script; it fetches /array/<token>/config.
BUNDLES = {"array.js": "/config.js", "array.full.no-external.js": "/config"}

PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>Headwater posthog-js test</title>
<script src="/posthog.js"></script>
<script>
  posthog.init({token}, {{
    api_host: {api_host},
    persistence: 'memory',
    autocapture: false,
    capture_pageleave: false,
    disable_session_recording: true,
    disable_surveys: true,  // else array.js fetches <api_host>/static/surveys.js even when surveys are off
    opt_out_useragent_filter: true,  // the user agent says HeadlessChrome, which posthog-js drops
  }})
  posthog.capture('browser_event', {{n: 1, run: {run}}})
  posthog.identify({user}, {{email: 'browser@example.com'}})
  posthog.capture('after_identify', {{n: 2, run: {run}}})
</script>
</head>
<body><p>Headwater</p></body>
</html>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "site"``: its URL and the directory."""
    site = tmp_path / "site"
    site.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Browser:
    """``browser.mjs`` as a child process; its JSON lines are collected by a reader thread."""

    def __init__(self, node: str, url: str, max_seconds: int, stderr: Path) -> None:
        self.lines: list[dict[str, Any]] = []
        self.stderr_path = stderr
        with stderr.open("wb") as err:
            self.proc = subprocess.Popen([node, "browser.mjs", url, str(max_seconds)], cwd=NODE_DIR,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                self.lines.append(json.loads(raw))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line["kind"] == kind]

    def close(self) -> None:
        """Close stdin (the driver then closes Chromium); kill it if that takes too long."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        self.proc.stdout.close()

    def transcript(self) -> str:
        lines = "\n".join(json.dumps(line)[:400] for line in self.lines)
        return f"{lines}\nstderr:\n{self.stderr_path.read_text(errors='replace')}"


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_posthog_js_in_chromium_lands_in_kafka(stack: Endpoints, pipeline: Pipeline, project: Project,
                                               start_gateway: StartGateway,
                                               page_server: tuple[str, Path], tmp_path: Path, bundle: str) -> None:
    """posthog-js inits, captures, identifies; its $pageview and events reach Kafka through CORS."""
    node = node_binary("posthog-js", "playwright-core")
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: run `make setup` (it installs Debian's chromium)")
    assert (DIST / bundle).is_file(), f"posthog-js no longer ships dist/{bundle}; pick its browser bundle in dist/"
    gateway = start_gateway(pipeline)
    page_url, site = page_server
    run = uuid.uuid4().hex[:8]
    user = f"browser-user-{run}"
    shutil.copyfile(DIST / bundle, site / "posthog.js")
    (site / "index.html").write_text(PAGE.format(token=json.dumps(project.api_token), api_host=json.dumps(gateway.url),
                                                 run=json.dumps(run), user=json.dumps(user)))

    expected = {"$pageview", "browser_event", "$identify", "after_identify"}
    browser = Browser(node, f"{page_url}/index.html", max_seconds=50, stderr=tmp_path / "browser.stderr")
    events: dict[str, dict[str, Any]] = {}

    def arrived() -> bool:
        nonlocal events
        events = landed(stack, pipeline)
        return expected <= {e["event"] for e in events.values()} or browser.proc.poll() is not None

    try:  # posthog-js flushes its queue on a timer (about 3 s)
        wait_until(arrived, 40, "posthog-js's events did not all arrive", interval=0.5)
    except WaitTimeout:
        pass  # the assertions below say what arrived, with the browser's transcript
    finally:
        browser.close()
    transcript = browser.transcript()
    assert browser.of("loaded"), f"the page did not load:\n{transcript}"
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events.values():
        by_name.setdefault(event["event"], []).append(event)
    assert expected <= set(by_name), f"landed {sorted(by_name)}; browser:\n{transcript}"

    # the browser: nothing went outside 127.0.0.1, no script error, every gateway call succeeded
    assert not browser.of("blocked"), transcript
    assert not browser.of("pageerror"), transcript
    requests = {line["id"]: line for line in browser.of("request")}
    statuses = {line["id"]: line["status"] for line in browser.of("response")}
    gateway_calls = [r for r in requests.values() if r["url"].startswith(gateway.url)]
    failed = [(r["method"], r["url"], statuses.get(r["id"])) for r in gateway_calls
              if r["method"] != "OPTIONS" and statuses.get(r["id"]) not in (200, 204)]
    assert not failed, f"gateway calls without a success answer: {failed}\n{transcript}"
    paths = {r["url"][len(gateway.url):].split("?")[0] for r in gateway_calls}
    assert f"/array/{project.api_token}{BUNDLES[bundle]}" in paths, paths  # remote config, 200 (checked above)
    assert "/flags/" in paths, paths
    captures = [r for r in gateway_calls if r["method"] == "POST" and r["url"].split("?")[0].endswith("/e/")]
    assert captures, f"posthog-js posted no events to /e/:\n{transcript}"
    for request in captures:
        assert request["headers"].get("origin") == page_url  # cross-origin: the CORS answer let it through
    # the current wire format: raw gzip as text/plain, no compression hint anywhere
    assert any(r["postDataHead"].startswith("1f8b") and r["headers"].get("content-type") == "text/plain"
               and "compression" not in r["url"] for r in captures), transcript

    # the events: posthog-js's own fields, distinct ids before and after identify
    [pageview] = by_name["$pageview"]
    [browser_event] = by_name["browser_event"]
    [identify] = by_name["$identify"]
    [after] = by_name["after_identify"]
    anonymous = browser_event["distinct_id"]
    assert anonymous != user
    assert pageview["distinct_id"] in {anonymous, user}  # posthog-js sends it once the DOM is ready
    assert identify["distinct_id"] == after["distinct_id"] == user
    now = time.time()
    for event in (pageview, browser_event, identify, after):
        properties = json.loads(event["properties"])
        assert event["token"] == project.api_token
        assert properties["token"] == project.api_token
        assert properties["$lib"] == "web"
        assert properties["$current_url"] == f"{page_url}/index.html"
        assert event["ip"] == "127.0.0.1"
        assert now - 60 < event["timestamp"] / 1e6 <= now + 1, event
        assert event["capture_warnings"] == []
    assert json.loads(browser_event["properties"])["n"] == 1
    assert json.loads(browser_event["properties"])["run"] == run
    assert json.loads(after["properties"])["n"] == 2
    identify_properties = json.loads(identify["properties"])
    assert identify_properties["$anon_distinct_id"] == anonymous
    assert "$set" not in identify_properties  # posthog-js sends $set at the top level of the event
    assert json.loads(identify["set"]) == {"email": "browser@example.com"}
