"""The stage runner: every event through every stage, in order, with each stage's error policy.

An exception in a stage never escapes to Faust (whose default is to commit and skip the
message). It becomes the stage's ``on_error`` policy:

- ``retry``: try again with exponential backoff, up to ``MAX_ATTEMPTS``, then dead-letter;
- ``dead_letter``: the original event goes to the dead-letter topic with reason and stage;
- ``drop``: the event ends here, counted;
- ``stop``: ``PipelineStopped`` stops the worker; nothing of the batch is committed.

A stage that takes longer than its ``timeout_seconds`` counts as an error. A ``Retry``
outcome, or ``headwater.errors.Unavailable`` raised by a stage or a plugin (Redis or Postgres
is down: mapped once, where they are called), is retried without limit whatever the policy:
the event is safe in Kafka and the partition waits, as Kafka Streams does for transient errors.

The dead letter's ``error`` is ``"<exception class>: <message>"``, or for a ``PluginError`` the
plugin's message alone. ``start`` starts every stage before the first event; a stage that
cannot start raises ``StageStartError`` naming it and the cause (an outage is retried there too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from headwater.errors import Unavailable
from headwater.runtime.topology import StageSpec
from streams import telemetry
from streams.errors import PipelineStopped, PluginError, StageStartError, StageTimeout
from streams.event import PipelineEvent
from streams.stages.base import DeadLetter, Drop, Ok, Outcome, Retry, Stage

log = logging.getLogger("headwater.worker")

MAX_ATTEMPTS = 5
BACKOFF_START = 0.1
BACKOFF_CAP = 30.0


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


class StageRunner:
    """Runs declared stages over events; see the module docstring for the policies."""

    def __init__(self, stages: Sequence[tuple[Stage, StageSpec]]) -> None:
        self._stages = stages

    async def start(self) -> None:
        """Start each stage, in order, before the first event; ``StageStartError`` for the first that fails."""
        for stage, _ in self._stages:
            await start_stage(stage)

    async def close(self) -> None:
        for stage, _ in self._stages:
            try:
                await stage.close()
            except Exception:
                log.exception("stage %s failed to close", stage.name)

    async def run(self, events: Sequence[PipelineEvent]) -> RunResult:
        result = RunResult()
        for event in events:
            outcome = await self._through_stages(event)
            if event.warnings:
                result.warned.append(event)
            if isinstance(outcome, Ok):
                result.passed.append(outcome.event)
            elif isinstance(outcome, Failed):
                result.dead_lettered.append(outcome)
            else:
                result.dropped += 1
        return result

    async def _through_stages(self, event: PipelineEvent) -> Ok | Failed | Drop:
        for stage, spec in self._stages:
            outcome = await self._run_stage(stage, spec, event)
            telemetry.STAGE_OUTCOMES.labels(stage.name, type(outcome).__name__.lower()).inc()
            if isinstance(outcome, Drop):
                telemetry.EVENTS_DROPPED.labels(stage.name, outcome.reason).inc()
                return outcome
            if isinstance(outcome, DeadLetter):
                telemetry.EVENTS_DEAD_LETTERED.labels(stage.name).inc()
                return Failed(event, stage.name, outcome.reason, outcome.error)
            assert isinstance(outcome, Ok)
            event = outcome.event
        return Ok(event)

    async def _run_stage(self, stage: Stage, spec: StageSpec, event: PipelineEvent) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await asyncio.wait_for(stage.process(event), spec.timeout_seconds)
            except Unavailable as exc:
                await _back_off(stage, attempt, str(exc))
                continue
            except TimeoutError:
                telemetry.STAGE_TIMEOUTS.labels(stage.name).inc()
                decided = self._policy(stage, spec, StageTimeout(f"took longer than {spec.timeout_seconds}s"), attempt)
                if decided is None:
                    continue
                return decided
            except Exception as exc:  # noqa: BLE001 - every error becomes the stage's policy
                decided = self._policy(stage, spec, exc, attempt)
                if decided is None:
                    telemetry.STAGE_RETRIES.labels(stage.name).inc()
                    await asyncio.sleep(min(BACKOFF_CAP, BACKOFF_START * 2 ** (attempt - 1)))
                    continue
                return decided
            if isinstance(outcome, Retry):
                await _back_off(stage, attempt, outcome.reason)
                continue
            return outcome

    @staticmethod
    def _policy(stage: Stage, spec: StageSpec, exc: Exception, attempt: int) -> Outcome | None:
        """The outcome for an exception, or None to retry."""
        error = error_text(exc)
        if spec.on_error == "stop":
            raise PipelineStopped(f"stage {stage.name} failed and its policy is stop: {error}") from exc
        if spec.on_error == "drop":
            return Drop("error")
        if spec.on_error == "retry" and attempt < MAX_ATTEMPTS:
            log.warning("stage %s failed (attempt %d of %d): %s", stage.name, attempt, MAX_ATTEMPTS, error)
            return None
        return DeadLetter("error", error)


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
            await _back_off(stage, attempt, str(exc))
        except Exception as exc:  # any failure to start stops the worker, named
            raise StageStartError(f"stage {stage.name} cannot start: {error_text(exc)}") from exc


async def _back_off(stage: Stage, attempt: int, reason: str) -> None:
    delay = min(BACKOFF_CAP, BACKOFF_START * 2 ** (attempt - 1))
    log.warning("stage %s retries in %.1fs: %s", stage.name, delay, reason)
    telemetry.STAGE_RETRIES.labels(stage.name).inc()
    await asyncio.sleep(delay)
