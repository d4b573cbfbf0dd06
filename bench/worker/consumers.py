"""The three consumers of the backlog, each a process pinned to the server core, each writing its own table.

- ``worker``: ``headwater worker`` with an isolated topology whose pipeline sources are the
  backlog's topics and whose other topics (``events_processed``, dead letters, warnings) are
  fresh; its ``clickhouse`` sink writes the consumer's table (``config.table``);
- ``quix``: ``bench.worker.quix_app``, a Quix Streams application;
- ``plain``: ``bench.worker.plain_loop``, a confluent-kafka consumer loop.

Each gets a consumer group of its own (its topology's ``app_id``) and a table created ``AS
events`` (same columns, engine and key), dropped at the end unless the topics are kept.
``worker_consumer`` builds a worker consumer under any name, its topology optionally edited (the
persons part's worker without the persons stage).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.worker.backlog import Backlog
from bench.worker.work import events_table
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import load_topology
from headwater.stack.process import pick_port
from sinks.clickhouse.client import connect
from tests.support.processes import PYTHON, Process, headwater_command, stack_env
from tests.support.topology import Pipeline, fresh_prefix, isolated_pipeline, isolated_topology, write_yaml

QUIX_VENV = Path(__file__).resolve().parents[2] / ".venv-quix"
"""The Quix Streams baseline's own venv (``scripts/setup.sh bench``): quixstreams caps packages the tests use."""

CONSUMERS = ("worker", "quix", "plain")
LABELS = {"worker": "headwater worker", "quix": "Quix Streams app", "plain": "plain confluent-kafka"}


def quix_python() -> str:
    """The Python of ``.venv-quix``; a clear error when it was not made."""
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{QUIX_VENV} is missing: run `make bench` (or `bash scripts/setup.sh bench`), "
                         "which installs Quix Streams there, or leave it out with --consumers worker plain")
    return str(python)


@dataclass(frozen=True)
class Consumer:
    """One consumer, ready to start: its process (not started yet), topology, table and stats file."""

    name: str
    process: Process
    pipeline: Pipeline
    table: str
    stats: Path | None  # the baselines' stats file (the worker has /metrics instead)
    created_topics: list[str]

    @property
    def group(self) -> str:
        return self.pipeline.group


def consumer_topology(backlog: Backlog, prefix: str, table: str) -> dict[str, Any]:
    """The default topology under ``prefix`` (topics, app id), reading the backlog's topics, into ``table``."""
    doc = isolated_topology(prefix)
    fresh_sources = set(doc["pipeline"]["sources"]) | set(doc["capture"].values())
    kept = backlog.pipeline.topology
    doc["topics"] = {t: spec for t, spec in doc["topics"].items() if t not in fresh_sources}
    doc["topics"].update({t: kept.topics[t].model_dump(mode="json") for t in backlog.sources})
    doc["capture"] = kept.capture.model_dump(mode="json")
    doc["pipeline"]["sources"] = backlog.sources
    for sink in doc["sinks"]:
        if sink["type"] == "clickhouse" and sink["config"].get("records", "events") == "events":
            sink["config"]["table"] = table
    return doc


def worker_consumer(name: str, backlog: Backlog, endpoints: Endpoints, run_dir: Path, cpu: int,
                    edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Consumer:
    """``headwater worker`` as consumer ``name``: ``consumer_topology`` (changed by ``edit`` first, if given)
    written and its fresh topics created, the process built (not started), pinned to ``cpu``."""
    prefix = fresh_prefix(f"bench_{name}_")
    table = f"{prefix}events"
    doc = consumer_topology(backlog, prefix, table)
    if edit is not None:
        doc = edit(doc)
    path = run_dir / f"topology-{name}.yaml"
    created = [t for t in doc["topics"] if t not in backlog.sources]
    pipeline = isolated_pipeline(endpoints.kafka, path, doc)
    port = pick_port(0)
    env = stack_env(endpoints) | {"HEADWATER_TOPOLOGY": str(path), "HEADWATER_WORKER_WEB_PORT": str(port),
                                  "HEADWATER_STATE_DIR": str(run_dir / f"{name}-state")}
    process = Process(name, headwater_command("worker", "--loglevel", "info"), run_dir / f"{name}.log", env,
                      url=f"http://127.0.0.1:{port}", cpu=cpu)
    assert events_table(pipeline.topology) == table
    return Consumer(name, process, pipeline, table, None, created)


def prepare(name: str, backlog: Backlog, endpoints: Endpoints, run_dir: Path, cpu: int,
            stage_calls: str = "message") -> Consumer:
    """Write ``name``'s topology (creating the worker's fresh topics) and build its process, pinned to ``cpu``.

    ``stage_calls``: how the baselines call the stages (``bench.worker.work``).
    """
    if name == "worker":
        return worker_consumer(name, backlog, endpoints, run_dir, cpu)
    prefix = fresh_prefix(f"bench_{name}_")
    table = f"{prefix}events"
    path = run_dir / f"topology-{name}.yaml"
    doc = consumer_topology(backlog, prefix, table)
    pipeline = Pipeline(write_yaml(path, doc), load_topology(path))  # reads only the backlog's topics
    stats = run_dir / f"{name}-stats.json"
    command = [quix_python() if name == "quix" else PYTHON,
               "-m", f"bench.worker.{'quix_app' if name == 'quix' else 'plain_loop'}",
               "--topology", str(path), "--stats", str(stats), "--stage-calls", stage_calls]
    if name == "quix":
        command += ["--state-dir", str(run_dir / "quix-state")]
    process = Process(name, command, run_dir / f"{name}.log", stack_env(endpoints), cpu=cpu)
    assert events_table(pipeline.topology) == table
    return Consumer(name, process, pipeline, table, stats, [])


async def _command(endpoints: Endpoints, sql: str) -> None:
    client = connect(endpoints.clickhouse)
    try:
        await client.command(sql)
    finally:
        await client.aclose()


def create_table(endpoints: Endpoints, table: str) -> None:
    """``table`` with the columns, engine and sorting key of ``events`` (``headwater migrate`` made that)."""
    asyncio.run(_command(endpoints, f"CREATE TABLE {table} AS events"))


def drop_table(endpoints: Endpoints, table: str) -> None:
    asyncio.run(_command(endpoints, f"DROP TABLE IF EXISTS {table}"))
