"""Test helpers for plugin authors: run a plugin on events without Kafka or any service.

    from streams.plugins.testing import PluginHarness, make_event

    async def test_adds_plan():
        harness = PluginHarness(AddPlan, {"plan": "pro"})
        [out] = await harness.run(make_event("signed_up", properties={"a": 1}))
        assert out is not None and out.properties["plan"] == "pro"

The harness runs the plugin through the same adapter the worker uses (config validation,
``setup`` before the first event, sync plugins in a thread, person updates in ``set``/
``set_once``, ``Drop`` and ``None``), with an in-memory key-value store and what the plugin
recorded to read back: ``counts`` (``ctx.metrics.count``), ``dropped`` (drop reasons) and
``warnings`` (ingestion warning types). Part of plugin API v1 (docs/plugins.md).
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.events import RawEvent
from streams.event import PipelineEvent
from streams.plugins.api import Event, Plugin
from streams.plugins.events import to_plugin_event
from streams.plugins.kv import MemoryKeyValue
from streams.plugins.registry import resolve_plugin
from streams.plugins.stage import PluginStage
from streams.runner import start_stage
from streams.stages.base import Drop, Errored, Ok

__all__ = ["PluginHarness", "make_event"]

TEST_TOKEN = "phc_test"  # noqa: S105 - a made-up project token for events built in tests


def make_event(
    event: str = "test_event",
    distinct_id: str = "user-1",
    properties: Mapping[str, Any] | None = None,
    *,
    timestamp: datetime | None = None,
    uuid: str | None = None,
    team_id: int = 1,
    ip: str | None = None,
    set: Mapping[str, Any] | None = None,
    set_once: Mapping[str, Any] | None = None,
) -> Event:
    """An event as a plugin receives it."""
    return Event(
        uuid=uuid or str(uuidlib.uuid4()), event=event, distinct_id=distinct_id,
        properties=dict(properties or {}), timestamp=timestamp or datetime.now(UTC), team_id=team_id, ip=ip,
        set=dict(set or {}), set_once=dict(set_once or {}),
    )


def _from_sdk(event: Mapping[str, Any]) -> Event:
    """An event in the SDK's shape: ``event``, ``distinct_id``, ``properties``, ``uuid``, ``$set``, ``$set_once``."""
    return make_event(str(event.get("event", "test_event")), str(event.get("distinct_id", "user-1")),
                      event.get("properties"), uuid=event.get("uuid"), set=event.get("$set"),
                      set_once=event.get("$set_once"))


def _pipeline_event(event: Event) -> PipelineEvent:
    micros = int(event.timestamp.timestamp() * 1_000_000)
    raw = RawEvent(
        uuid=event.uuid, event=event.event, distinct_id=event.distinct_id, token=TEST_TOKEN, timestamp=micros,
        now=micros, sent_at=None, ip=event.ip, properties=orjson.dumps(event.properties).decode(),
        set=orjson.dumps(event.set).decode() if event.set else None,
        set_once=orjson.dumps(event.set_once).decode() if event.set_once else None,
        historical_migration=False, capture_warnings=[], skip_person_processing=False,
    )
    pipeline_event = PipelineEvent.from_raw(raw, "test")
    pipeline_event.team_id = event.team_id
    return pipeline_event


class _Recorder:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, name: str, amount: float = 1.0) -> None:
        self.counts[name] += int(amount)


class PluginHarness:
    """Runs one plugin (a class, a registered name or an import path) with a config dict.

    A config the plugin's ``Config`` refuses raises pydantic's ``ValidationError`` here; an
    exception the plugin raises comes out of ``run`` (in the worker, the stage's ``on_error``
    would apply); a failing ``setup`` comes out of ``start`` (or the first ``run``) as
    ``StageStartError``, the error that stops the worker.
    """

    def __init__(self, plugin: type[Plugin[Any]] | str, config: Mapping[str, Any] | None = None,
                 stage: str = "test") -> None:
        plugin_cls = resolve_plugin(plugin) if isinstance(plugin, str) else plugin
        self.kv = MemoryKeyValue()
        self._metrics = _Recorder()
        self.stage = PluginStage(stage, plugin_cls, plugin_cls.Config.model_validate(dict(config or {})), self.kv,
                                 self._metrics)
        self._started = False
        self.warnings: list[str] = []
        """The ingestion warning types the events got (``event_dropped_by_transformation`` for ``None``)."""
        self.dropped: list[str] = []
        """The reason of every event dropped: the plugin's ``Drop`` reason, ``dropped_by_plugin`` for ``None``."""

    @property
    def counts(self) -> Counter[str]:
        """What the plugin counted with ``ctx.metrics.count``."""
        return self._metrics.counts

    async def start(self) -> None:
        """Start the plugin as the worker does (its ``setup``); ``run`` calls it first if you do not."""
        if not self._started:
            await start_stage(self.stage)
            self._started = True

    async def run(self, *events: Event | Mapping[str, Any]) -> list[Event | None]:
        """The events through the plugin as one batch, as the worker calls it: each event as the
        next stage sees it, or None if dropped. The first event's exception is raised here."""
        await self.start()
        pipeline_events = [_pipeline_event(event if isinstance(event, Event) else _from_sdk(event)) for event in events]
        outcomes = await self.stage.process_batch(pipeline_events)
        out: list[Event | None] = []
        for pipeline_event, outcome in zip(pipeline_events, outcomes, strict=True):
            if isinstance(outcome, Errored):
                raise outcome.error
            self.warnings += [w.type for w in pipeline_event.warnings]
            if isinstance(outcome, Drop):
                self.dropped.append(outcome.reason)
            out.append(to_plugin_event(pipeline_event) if isinstance(outcome, Ok) else None)
        return out

    def run_sync(self, *events: Event | Mapping[str, Any]) -> list[Event | None]:
        """``run`` for tests that are not async."""
        return asyncio.run(self.run(*events))

    async def close(self) -> None:
        await self.stage.close()
