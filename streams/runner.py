"""The stage runner: a batch through every stage, in order, with each stage's error policy.

Each stage is called once per batch (``process_batch``) with the events still in play, and
answers one outcome per event. Metrics are counted per batch, not per event. An exception in
a stage never escapes to Faust (whose default is to commit and skip the message); it becomes
the stage's ``on_error`` policy:

- ``retry``: try again with exponential backoff, up to ``MAX_ATTEMPTS``, then dead-letter;
- ``dead_letter``: the original event goes to the dead-letter topic with reason and stage;
- ``drop``: the event ends here, counted;
- ``stop``: ``PipelineStopped`` stops the worker; nothing of the batch is committed.

Per event and per call:

- an ``Errored`` outcome is one event's failure: the policy applies to that event alone (a
  ``retry`` calls the stage again with just the failed events);
- a call that raises, or takes longer than ``timeout_seconds``, failed for the whole batch: under ``retry`` the call is
  repeated first; then the batch is split in halves and each half tried once more, down to
  single events, so only the events that fail on their own are dropped or dead-lettered;
- a ``Retry`` outcome, or ``headwater.errors.Unavailable`` raised by a stage or a plugin (Redis
  or Postgres is down: mapped once, where they are called, or returned as ``Errored``), is
  retried without limit whatever the policy: the events are safe in Kafka and the partition
  waits, as Kafka Streams does for transient errors.

The dead letter's ``error`` is ``"<exception class>: <message>"``, or for a ``PluginError`` the
plugin's message alone. ``start`` starts every stage before the first event; a stage that
cannot start raises ``StageStartError`` naming it and the cause (an outage is retried there too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from headwater.errors import Unavailable
from headwater.runtime.topology import StageSpec
from streams import telemetry
from streams.errors import PipelineStopped, PluginError, StageStartError, StageTimeout
from streams.event import PipelineEvent
from streams.stages.base import DeadLetter, Drop, Errored, Ok, Outcome, Retry, Stage

log = logging.getLogger("headwater.worker")

MAX_ATTEMPTS = 5
BACKOFF_START = 0.1
BACKOFF_CAP = 30.0

Settled = Ok | Drop | DeadLetter
"""What an event's outcome is once the runner is done with a stage: retries and errors resolved."""


@dataclass(frozen=True)
class Failed:
    """An event a stage dead-lettered."""

    event: PipelineEvent
    stage: str
    reason: str
    error: str


@dataclass
class RunResult:
    passed: list[PipelineEvent] = field(default_factory=list)
    dead_lettered: list[Failed] = field(default_factory=list)
    dropped: int = 0
    warned: list[PipelineEvent] = field(default_factory=list)  # every event that carries warnings


class _Step:
    """One declared stage with its spec and its metric series, looked up once."""

    def __init__(self, stage: Stage, spec: StageSpec) -> None:
        self.stage = stage
        self.spec = spec
        self.name = stage.name
        self.ok = telemetry.STAGE_OUTCOMES.labels(stage.name, "ok")
        self.drop = telemetry.STAGE_OUTCOMES.labels(stage.name, "drop")
        self.dead_letter = telemetry.STAGE_OUTCOMES.labels(stage.name, "deadletter")
        self.dead_lettered = telemetry.EVENTS_DEAD_LETTERED.labels(stage.name)
        self.retries = telemetry.STAGE_RETRIES.labels(stage.name)
        self.timeouts = telemetry.STAGE_TIMEOUTS.labels(stage.name)
        self.seconds = telemetry.STAGE_SECONDS.labels(stage.name)
        self.logged_errors: set[str] = set()  # error types whose traceback this stage has logged


class StageRunner:
    """Runs declared stages over batches of events; see the module docstring for the policies."""

    def __init__(self, stages: Sequence[tuple[Stage, StageSpec]]) -> None:
        self._steps = [_Step(stage, spec) for stage, spec in stages]

    async def start(self) -> None:
        """Start each stage, in order, before the first event; ``StageStartError`` for the first that fails."""
        for step in self._steps:
            await start_stage(step.stage)

    async def close(self) -> None:
        for step in self._steps:
            try:
                await step.stage.close()
            except Exception:
                log.exception("stage %s failed to close", step.name)

    async def run(self, events: Sequence[PipelineEvent]) -> RunResult:
        result = RunResult()
        live = list(events)
        for step in self._steps:
            if not live:
                break
            started = time.perf_counter()
            outcomes = await self._settle(step, live)
            step.seconds.observe(time.perf_counter() - started)
            survivors: list[PipelineEvent] = []
            dropped: Counter[str] = Counter()
            for event, outcome in zip(live, outcomes, strict=True):
                if type(outcome) is Ok:
                    survivors.append(outcome.event)
                elif isinstance(outcome, Drop):
                    dropped[outcome.reason] += 1
                else:
                    assert isinstance(outcome, DeadLetter)
                    result.dead_lettered.append(Failed(event, step.name, outcome.reason, outcome.error))
            self._count(step, len(survivors), dropped, len(live) - len(survivors) - sum(dropped.values()))
            result.dropped += sum(dropped.values())
            live = survivors
        result.passed = live
        result.warned = [event for event in events if event.warnings]
        return result

    @staticmethod
    def _count(step: _Step, passed: int, dropped: Counter[str], dead_lettered: int) -> None:
        if passed:
            step.ok.inc(passed)
        if dropped:
            step.drop.inc(sum(dropped.values()))
            for reason, count in dropped.items():
                telemetry.EVENTS_DROPPED.labels(step.name, reason).inc(count)
        if dead_lettered:
            step.dead_letter.inc(dead_lettered)
            step.dead_lettered.inc(dead_lettered)

    async def _settle(self, step: _Step, events: list[PipelineEvent], failures: int = 0) -> list[Settled]:
        """One outcome per event of ``events`` that is final for this stage (no Retry, no Errored).

        ``failures`` is how many times these events already failed under the ``retry`` policy.
        """
        settled: list[Settled | None] = [None] * len(events)
        failed = [failures] * len(events)  # per event: failed attempts so far
        pending = list(range(len(events)))
        waits = 0  # outages and Retry outcomes in a row: they back off longer, without limit
        while pending:
            try:
                outcomes = await self._call(step, [events[i] for i in pending])
            except Unavailable as exc:
                waits += 1
                await _back_off(step, waits, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - every error becomes the stage's policy
                attempt = max(failed[i] for i in pending) + 1
                decided = self._policy(step, exc, attempt)
                if decided is None:  # retry the whole call
                    for i in pending:
                        failed[i] = attempt
                    step.retries.inc()
                    await asyncio.sleep(_delay(attempt))
                    continue
                isolated = await self._isolate(step, [events[i] for i in pending], exc, decided)
                for i, final in zip(pending, isolated, strict=True):
                    settled[i] = final
                break
            again: list[int] = []
            waiting = ""
            for i, answer in zip(pending, outcomes, strict=True):
                if isinstance(answer, (Ok, Drop, DeadLetter)):  # the common case, checked first
                    settled[i] = answer
                    continue
                outcome = answer if isinstance(answer, Retry | Errored) else Errored(
                    TypeError(f"stage {step.name} returned {answer!r}, not an Outcome"))  # a bug: fails that event
                if isinstance(outcome, Retry):
                    again.append(i)
                    waiting = outcome.reason
                elif isinstance(outcome, Errored) and isinstance(outcome.error, Unavailable):
                    again.append(i)
                    waiting = str(outcome.error)
                else:
                    failed[i] += 1
                    decided = self._policy(step, outcome.error, failed[i])
                    if decided is None:
                        again.append(i)
                    else:
                        settled[i] = decided
            if again and waiting:
                waits += 1
                await _back_off(step, waits, waiting)
            elif again:
                step.retries.inc()
                await asyncio.sleep(_delay(max(failed[i] for i in again)))
            pending = again
        return [outcome for outcome in settled if outcome is not None]

    async def _isolate(self, step: _Step, events: list[PipelineEvent], exc: Exception,
                       decided: Drop | DeadLetter) -> list[Settled]:
        """A call on ``events`` failed for good: bisect to find the events that fail on their own."""
        if len(events) == 1:
            return [decided]
        log.warning("stage %s failed on %d events (%s); trying each half", step.name, len(events), error_text(exc))
        middle = len(events) // 2
        # the halves get no more retries (the whole call had them): a half that fails is split again
        return (await self._settle(step, events[:middle], MAX_ATTEMPTS)
                + await self._settle(step, events[middle:], MAX_ATTEMPTS))

    async def _call(self, step: _Step, events: list[PipelineEvent]) -> Sequence[Outcome]:
        try:
            outcomes = await asyncio.wait_for(step.stage.process_batch(events), step.spec.timeout_seconds)
        except TimeoutError:
            step.timeouts.inc()
            raise StageTimeout(f"took longer than {step.spec.timeout_seconds}s for {len(events)} events") from None
        if len(outcomes) != len(events):
            raise TypeError(f"stage {step.name} answered {len(outcomes)} outcomes for {len(events)} events")
        return outcomes

    @staticmethod
    def _policy(step: _Step, exc: Exception, attempt: int) -> Drop | DeadLetter | None:
        """The outcome for an exception on the ``attempt``-th try, or None to retry."""
        error = error_text(exc)
        if step.spec.on_error == "stop":
            raise PipelineStopped(f"stage {step.name} failed and its policy is stop: {error}") from exc
        if step.spec.on_error == "drop":
            _log_once(step, exc, error)
            return Drop("error")
        if step.spec.on_error == "retry" and attempt < MAX_ATTEMPTS:
            log.warning("stage %s failed (attempt %d of %d): %s", step.name, attempt, MAX_ATTEMPTS, error)
            return None
        _log_once(step, exc, error)
        return DeadLetter("error", error)


def _log_once(step: _Step, exc: Exception, error: str) -> None:
    """The first failure of each error type in a stage goes to the log with its traceback (file and
    line); the others are counted and dead-lettered without flooding the log."""
    kind = type(exc).__name__
    if kind in step.logged_errors:
        return
    step.logged_errors.add(kind)
    if isinstance(exc, PluginError):  # the plugin's own verdict: its message says it all
        log.warning("stage %s: %s (dead-lettered; logged once per error type)", step.name, error)
    else:
        log.error("stage %s failed: %s (dead-lettered; the traceback is logged once per error type)", step.name,
                  error, exc_info=exc)


def error_text(exc: BaseException) -> str:
    """How an exception reads in a dead letter's ``error`` header and in start-up errors."""
    return str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"


async def start_stage(stage: Stage) -> None:
    """Call the stage's ``start``, retrying an outage; ``StageStartError`` if it fails."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await stage.start()
            return
        except Unavailable as exc:
            delay = _delay(attempt)
            log.warning("stage %s cannot start yet, retrying in %.1fs: %s", stage.name, delay, exc)
            await asyncio.sleep(delay)
        except Exception as exc:  # any failure to start stops the worker, named
            raise StageStartError(f"stage {stage.name} cannot start: {error_text(exc)}") from exc


def _delay(attempt: int) -> float:
    return min(BACKOFF_CAP, BACKOFF_START * 2.0 ** (attempt - 1))


async def _back_off(step: _Step, attempt: int, reason: str) -> None:
    delay = _delay(attempt)
    log.warning("stage %s retries in %.1fs: %s", step.name, delay, reason)
    step.retries.inc()
    await asyncio.sleep(delay)
