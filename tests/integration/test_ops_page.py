"""The ops page (``headwater ops``) in a real headless Chromium: it shows the same readers, statuses
and numbers as ``headwater lag --json``, and they move while events flow.

A gateway and a worker run an isolated pipeline; ``headwater ops`` runs as a child process on a
free port; ``tests/node/ops_page.mjs`` drives Debian's Chromium with playwright-core and reads
what the page drew from its DOM (the lag table's rows carry their numbers as data attributes).
Numbers move, so the page is compared with a lag report while the pipeline is idle (caught up:
both must agree exactly), then again after more events went through. The page must load nothing
but its own files, raise no script error, and answer 405 to anything but GET. A screenshot is
kept in the test's tmp dir and at ``.artifacts/ops-page.png`` in the repository (git-ignored).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from headwater.stack.process import pick_port
from tests.integration.test_js_sdks import NODE_DIR, node_binary
from tests.support import ROOT
from tests.support.clickhouse import wait_for_count
from tests.support.processes import Process, StartGateway, StartWorker, headwater_command, stack_env
from tests.support.topology import Pipeline
from tests.support.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = ROOT / ".artifacts" / "ops-page.png"
COMPARED = ("status", "lag", "committed", "end", "members")


class OpsBrowser:
    """``ops_page.mjs`` as a child process: commands on its stdin, its JSON lines read by a thread."""

    def __init__(self, node: str, url: str, stderr: Path) -> None:
        self.lines: list[dict[str, Any]] = []
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_path = stderr
        with stderr.open("wb") as err:
            self.proc = subprocess.Popen([node, "ops_page.mjs", url], cwd=NODE_DIR, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                line = json.loads(raw)
                self.lines.append(line)
                if line["kind"] in {"ready", "page", "shot", "error"}:
                    self.replies.put(line)

    def reply(self, timeout: float) -> dict[str, Any]:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the browser did not answer within {timeout}s:\n{self.transcript()}") from None

    def command(self, cmd: str, timeout: float = 30, **args: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        self.proc.stdin.flush()
        answer = self.reply(timeout)
        assert answer["kind"] != "error", answer
        return answer

    def read(self) -> dict[str, Any]:
        return self.command("read")

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line["kind"] == kind]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def transcript(self) -> str:
        lines = "\n".join(json.dumps(line)[:300] for line in self.lines if line["kind"] != "page")
        return f"{lines}\nstderr:\n{self.stderr_path.read_text(errors='replace')}"


def _env(stack: Endpoints, pipeline: Pipeline) -> dict[str, str]:
    return {**stack_env(stack), "HEADWATER_TOPOLOGY": str(pipeline.path)}


def _lag_report(stack: Endpoints, pipeline: Pipeline) -> dict[str, Any]:
    done = subprocess.run(headwater_command("lag", "--json", "--window", "2", "--interval", "0.5"),
                          env={**os.environ, **_env(stack, pipeline)}, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _report_rows(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """What the page's lag table shows of each reader, from a ``headwater lag --json`` report."""
    rows = {}
    for group in report["groups"]:
        committed = [p["committed"] for p in group["partitions"] if p["committed"] is not None]
        rows[(group["role"], group["group"])] = {
            "status": group["status"], "lag": group["lag"], "members": group["members"],
            "committed": sum(committed) if committed else None, "end": sum(p["end"] for p in group["partitions"])}
    return rows


def _page_rows(page: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(g["role"], g["group"]): {k: g[k] for k in COMPARED} for g in page["groups"]}


def _start_ops(stack: Endpoints, pipeline: Pipeline, worker: Process, tmp_path: Path) -> Process:
    port = pick_port(0)
    command = headwater_command("ops", "--port", str(port), "--interval", "1", "--window", "4",
                                "--worker-metrics", f"{worker.url}/metrics")
    ops = Process("ops", command, tmp_path / f"ops-{port}.log", _env(stack, pipeline),
                  url=f"http://127.0.0.1:{port}").start()
    ops.wait_http("/_liveness", timeout=60)
    return ops


def _idle(stack: Endpoints, pipeline: Pipeline) -> bool:
    """Every reader caught up and OK: the numbers hold still, so the page and a report must agree."""
    report = _lag_report(stack, pipeline)
    return all(g["status"] == "OK" and g["lag"] == 0 for g in report["groups"])


async def test_the_ops_page_shows_what_lag_shows_and_follows_the_events(
        stack: Endpoints, pipeline: Pipeline, project: Project, start_gateway: StartGateway,
        start_worker: StartWorker, processes: list[Process], tmp_path: Path) -> None:
    node = node_binary("playwright-core")
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: run `make setup` (it installs Debian's chromium)")
    gateway = start_gateway(pipeline)
    worker = start_worker(pipeline)
    table = f"events FINAL WHERE team_id = {project.id}"
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        batch = [{"event": "ops_page", "distinct_id": f"u{sent + n}", "properties": {"n": n}} for n in range(count)]
        response = httpx.post(f"{gateway.url}/batch/",
                              content=orjson.dumps({"api_key": project.api_token, "batch": batch}), timeout=30)
        assert response.status_code == 200
        sent += count

    send(20)
    await wait_for_count(stack, f"SELECT count() FROM {table}", sent, logs=[worker.log])
    wait_until(lambda: _idle(stack, pipeline), 90, "the pipeline never caught up", logs=[worker])

    ops = _start_ops(stack, pipeline, worker, tmp_path)
    processes.append(ops)
    browser = OpsBrowser(node, ops.url + "/", tmp_path / "browser.stderr")
    try:
        ready = browser.reply(90)
        assert ready["kind"] == "ready", browser.transcript()
        reader_set = set(_report_rows(_lag_report(stack, pipeline)))

        def agrees() -> dict[str, Any] | None:
            """The page, once it shows exactly what a report taken just before shows."""
            report = _report_rows(_lag_report(stack, pipeline))
            page = browser.read()
            return page if _page_rows(page) == report else None

        page = wait_until(agrees, 60, lambda: f"the page never showed what `headwater lag --json` shows:\n"
                          f"report {_report_rows(_lag_report(stack, pipeline))}\npage {_page_rows(browser.read())}",
                          logs=[ops, worker])
        assert page is not None
        assert set(_page_rows(page)) == reader_set
        assert {g["role"] for g in page["groups"]} >= {"pipeline", "sink:clickhouse", "window:event_rollups"}
        assert page["overall"] == "OK"
        # the topology: every topic, stage and sink drawn, the stages with the worker's counts
        topology = pipeline.topology
        drawn = {n["id"] for n in page["nodes"]}
        assert {f"stage:{s.name}" for s in topology.pipeline.stages} <= drawn
        assert {f"sink:{s.name}" for s in topology.sinks} <= drawn
        assert {f"topic:{t}" for t in topology.pipeline.sources} | {f"topic:{topology.pipeline.output}"} <= drawn
        assert page["edges"] >= len(drawn) - 1
        statuses = {n["id"]: n["status"] for n in page["nodes"]}
        assert statuses["sink:clickhouse"] == "OK"
        stages = {s["stage"]: s for s in page["stages"]}
        assert list(stages) == [s.name for s in topology.pipeline.stages]
        assert stages["prepare"]["ok"] >= 20  # the worker's headwater_stream_stage_outcomes_total
        assert {s["sink"] for s in page["sinks"]} == {s.name for s in topology.sinks}
        assert page["deadLetters"] == 0
        before = page

        # events flow: the page's offsets, counts and charts move without a reload
        for _ in range(3):
            send(30)
        pipeline_key = ("pipeline", pipeline.group)

        def moved() -> dict[str, Any] | None:
            now = browser.read()
            rows, old = _page_rows(now), _page_rows(before)
            prepare = {s["stage"]: s["ok"] for s in now["stages"]}["prepare"]
            if (rows[pipeline_key]["end"] > old[pipeline_key]["end"]
                    and rows[pipeline_key]["committed"] > old[pipeline_key]["committed"]
                    and prepare >= before_prepare + 90
                    and now["chartPoints"]["chart-throughput"] > before["chartPoints"]["chart-throughput"]):
                return now
            return None

        before_prepare = stages["prepare"]["ok"]
        wait_until(moved, 60, lambda: f"the page did not follow the events: {_page_rows(browser.read())}",
                   interval=0.5, logs=[ops, worker])
        await wait_for_count(stack, f"SELECT count() FROM {table}", sent, logs=[worker.log])
        wait_until(lambda: _idle(stack, pipeline), 90, "the pipeline never caught up again", logs=[worker])
        after = wait_until(agrees, 60, "after the events, the page never agreed with `headwater lag --json`",
                           logs=[ops, worker])
        assert after is not None
        assert _page_rows(after)[pipeline_key]["end"] > _page_rows(before)[pipeline_key]["end"]

        ARTIFACT.parent.mkdir(exist_ok=True)
        for path in (tmp_path / "ops-page.png", ARTIFACT):
            browser.command("shot", path=str(path))
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert path.stat().st_size > 20_000
    finally:
        browser.close()
    transcript = browser.transcript()
    assert not browser.of("blocked"), f"the page asked for something outside 127.0.0.1:\n{transcript}"
    assert not browser.of("pageerror"), transcript
    assert not [c for c in browser.of("console") if c["type"] == "error"], transcript

    # read-only: nothing but GET (and HEAD) gets through
    for method, route in (("POST", "/api/state"), ("DELETE", "/"), ("PUT", "/static/ops.js"),
                          ("PATCH", "/api/history")):
        assert httpx.request(method, ops.url + route, timeout=10).status_code == 405, (method, route)
    script = httpx.get(ops.url + "/static/ops.js", timeout=10)
    assert script.status_code == 200
    assert "default-src 'self'" in script.headers["content-security-policy"]
