"""The one place the bench's own consumers call the pipeline's stages.

The stage contract is being changed (``await stage.process(event) -> Outcome`` became
``await stage.process_batch(events) -> list[Outcome]``): when it changes again, only
``through_stages`` changes. It runs the stages the way the worker's ``StageRunner`` does on a
good day: each stage once over the events still in play, ``Ok`` goes on, anything else ends
the event and is counted. The runner's error policies (retry, bisection, timeouts) and its
metrics are not part of it: with the bench's events nothing fails, and the harness checks that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streams.event import PipelineEvent
from streams.stages.base import Drop, Ok, Stage


@dataclass
class Passed:
    """What came out of the stages: the events that passed them all, and how many did not."""

    events: list[PipelineEvent] = field(default_factory=list)
    dropped: int = 0
    failed: int = 0  # DeadLetter, Retry or Errored: the worker would dead-letter or retry these


async def through_stages(stages: Sequence[Stage], events: Sequence[PipelineEvent]) -> Passed:
    """``events`` (one Kafka message's) through every stage in order, each stage called once for them all."""
    result = Passed()
    live = list(events)
    for stage in stages:
        if not live:
            break
        survivors: list[PipelineEvent] = []
        for outcome in await stage.process_batch(live):
            if type(outcome) is Ok:
                survivors.append(outcome.event)
            elif isinstance(outcome, Drop):
                result.dropped += 1
            else:
                result.failed += 1
        live = survivors
    result.events = live
    return result
