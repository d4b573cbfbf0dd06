"""The shared test helpers: the deadline helper, process logs, isolated topologies."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from headwater.runtime.topology import load_topology
from tests.support import DEFAULT_TOPOLOGY
from tests.support.logs import LogWatch, tail
from tests.support.processes import Process
from tests.support.topology import isolated_topology, write_yaml
from tests.support.waiting import WaitTimeout, wait_until


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = iter([0, None, "", "ready"])
    assert wait_until(lambda: next(calls), 5, "never ready", interval=0.001) == "ready"


async def test_wait_until_awaits_an_async_predicate_without_blocking_the_loop() -> None:
    ticks: list[int] = []

    async def predicate() -> int | None:
        ticks.append(1)
        return len(ticks) if len(ticks) >= 3 else None

    assert await wait_until(predicate, 5, "never", interval=0.001) == 3


def test_a_timeout_says_what_and_shows_the_last_value_error_and_log(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    log.write_text("starting\nKafka is not answering\n")

    def refuses() -> bool:
        raise ConnectionRefusedError("port 9")

    started = time.monotonic()
    with pytest.raises(WaitTimeout) as failure:
        wait_until(refuses, 0.2, "the gateway did not start", interval=0.01, logs=[log],
                   ignore=(ConnectionRefusedError,))
    assert 0.2 <= time.monotonic() - started < 2
    text = str(failure.value)
    assert text.startswith("the gateway did not start (not within 0.2s; last value None)")
    assert "ConnectionRefusedError: port 9" in text
    assert f"--- the end of {log}:\nstarting\nKafka is not answering" in text


def test_an_unexpected_error_is_not_swallowed() -> None:
    def broken() -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait_until(broken, 5, "unused", ignore=(ConnectionError,))


def test_a_watched_process_that_exits_ends_the_wait_at_once(tmp_path: Path) -> None:
    process = Process("server", [sys.executable, "-c", "print('bye'); raise SystemExit(3)"],
                      tmp_path / "server.log").start()
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="server exited with 3") as failure:
        wait_until(lambda: False, 30, "the server did not answer", logs=[process])
    assert time.monotonic() - started < 10
    assert "bye" in str(failure.value)
    assert process.stop() == 3


def test_log_watch_reads_what_was_added_since_the_last_look(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("old\n")
    watch = LogWatch(log)
    with log.open("a") as out:
        out.write("new\n")
    assert watch.new() == "new\n"
    assert watch.new() == ""
    assert tail(tmp_path / "missing.log") == "(no log)"


def test_an_isolated_topology_prefixes_every_topic_it_names(tmp_path: Path) -> None:
    default = load_topology(DEFAULT_TOPOLOGY)
    doc = isolated_topology("iso_")
    doc["agents"] = [{"name": "tap", "source": doc["pipeline"]["output"], "handler": "tests.fixtures.agents:tap"}]
    topology = load_topology(write_yaml(tmp_path / "topology.yaml", doc))  # every reference names a declared topic
    assert set(topology.topics) == {f"iso_{name}" for name in default.topics}
    assert topology.app_id == f"iso_{default.app_id}"
    assert [s.source for s in topology.sinks] == [f"iso_{s.source}" for s in default.sinks]
    assert topology.capture.topic == f"iso_{default.capture.topic}"
