"""A plugin as a pipeline stage: converts events in and out, starts the plugin, runs it on a batch.

Person updates: on the way in, the SDK's top-level ``$set``/``$set_once`` are folded into the
properties (``normalize``'s rule, ``fold_person_updates``) and handed to the plugin as
``event.set``/``event.set_once``, out of ``properties``; on the way out they are merged back
into ``properties["$set"]``/``["$set_once"]`` with the same rule. So a plugin sees one person
update, and what it writes there takes effect whether it runs before or after ``normalize``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from streams import telemetry
from streams.errors import PluginError, StageError
from streams.event import PipelineEvent
from streams.plugins.api import BatchMethod, Event, Plugin, PluginContext, PluginMetrics
from streams.plugins.events import apply_plugin_event, give_back, to_plugin_event
from streams.plugins.kv import KeyValueStore
from streams.stages.base import Drop, Errored, Ok, Outcome

DROP_REASON = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""A plugin's ``Drop`` reason is a metric label: a fixed snake_case word ..."""
MAX_DROP_REASONS = 32
"""... and one plugin has a few of them, not one per user or per value."""
DROPPED = Drop("dropped_by_plugin")


class StageMetrics:
    def __init__(self, stage: str) -> None:
        self._stage = stage

    def count(self, name: str, amount: float = 1.0) -> None:
        telemetry.PLUGIN_EVENTS.labels(self._stage, name).inc(amount)


Result = Event | Drop | None
"""What a plugin answers for one event."""


class PluginStage:
    """Runs ``plugin`` on a batch: an ``Event`` passes, ``Drop`` ends it, ``None`` drops it with a warning.

    A plugin with ``process_batch`` gets the whole batch in one call. Otherwise ``process`` is
    called per event: awaited in turn when it is ``async``, or, for a plain ``def``, the whole
    batch in one worker thread (one thread hop per batch, not per event). What one event
    raises fails that event alone (``Errored``): its neighbours go on.
    """

    def __init__(self, name: str, plugin_cls: type[Plugin[Any]], config: BaseModel, kv: KeyValueStore,
                 metrics: PluginMetrics | None = None) -> None:
        self.name = name
        self.context: PluginContext[Any] = PluginContext(
            config=config, stage=name, log=logging.getLogger(f"headwater.plugins.{name}"), kv=kv,
            metrics=metrics or StageMetrics(name),
        )
        self.plugin = plugin_cls(config, self.context)
        self._batch: BatchMethod | None = getattr(self.plugin, "process_batch", None)
        self._is_async = inspect.iscoroutinefunction(self.plugin.process)
        self._ready = False
        self._setup_lock = asyncio.Lock()
        self._reasons: set[str] = set()  # Drop reasons already checked

    async def start(self) -> None:
        """The plugin's ``setup``, once (``StageRunner.start`` calls it before the first event)."""
        async with self._setup_lock:  # one setup, even if events arrive while it runs
            if not self._ready:
                await self.plugin.setup()
                self._ready = True

    async def process_batch(self, events: Sequence[PipelineEvent]) -> list[Outcome]:
        if not self._ready:
            raise StageError(f"plugin stage {self.name} was not started (StageRunner.start runs its setup)")
        incoming = [to_plugin_event(event) for event in events]
        results: Sequence[Result | Errored]
        try:
            if self._batch is not None:
                results = await self._batch(incoming, self.context)
                if len(results) != len(incoming):
                    raise PluginError(f"plugin {self.name} answered {len(results)} results for {len(incoming)} events")
            elif self._is_async:
                results = [await self._one(event) for event in incoming]
            else:
                results = await asyncio.to_thread(self._each, incoming)
        except BaseException:
            # the events may be tried again (retry, a timeout, an outage): give their person updates back
            for event, sent in zip(events, incoming, strict=True):
                give_back(event, sent)
            raise
        return [self._outcome(event, sent, result)
                for event, sent, result in zip(events, incoming, results, strict=True)]

    async def _one(self, event: Event) -> Result | Errored:
        try:
            return await self.plugin.process(event, self.context)  # type: ignore[no-any-return, misc]
        except Exception as exc:  # noqa: BLE001 - fails this event alone
            return Errored(exc)

    def _each(self, events: list[Event]) -> list[Result | Errored]:
        """A sync plugin over the batch, in a worker thread."""
        results: list[Result | Errored] = []
        for event in events:
            try:
                results.append(self.plugin.process(event, self.context))  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - fails this event alone
                results.append(Errored(exc))
        return results

    def _outcome(self, event: PipelineEvent, sent: Event, result: object) -> Outcome:
        if isinstance(result, Errored):
            give_back(event, sent)
            return result
        if result is None:
            event.warn("event_dropped_by_transformation", key=self.name, stage=self.name)
            return DROPPED
        if isinstance(result, Drop):
            try:
                return self._checked(result)
            except PluginError as exc:
                give_back(event, sent)
                return Errored(exc)
        if not isinstance(result, Event):
            give_back(event, sent)
            return Errored(PluginError(
                f"plugin {self.name} returned {type(result).__name__}, not an Event, a Drop or None"))
        apply_plugin_event(event, result)
        return Ok(event)

    def _checked(self, drop: Drop) -> Drop:
        if drop.reason not in self._reasons:
            if not DROP_REASON.fullmatch(drop.reason) or len(self._reasons) >= MAX_DROP_REASONS:
                raise PluginError(f"plugin {self.name} dropped an event with reason {drop.reason!r}: a reason is a "
                                  f"metric label, a fixed snake_case word (at most 64 characters, "
                                  f"{MAX_DROP_REASONS} per plugin)")
            self._reasons.add(drop.reason)
        return drop

    async def close(self) -> None:
        if self._ready:
            self._ready = False
            await self.plugin.close()
