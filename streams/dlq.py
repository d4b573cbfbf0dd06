"""The dead-letter topic: the original message of an event that could not be processed.

Each dead letter is one Kafka message: the event as a one-event envelope in the wire format
it arrived in (so ``headwater dlq replay`` can put it back on its source topic), with the
reason, stage, error, source topic and time in headers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from faust.types import TopicT
from faust.types.tuples import RecordMetadata


def dead_letter_headers(*, reason: str, stage: str, error: str, source_topic: str) -> list[tuple[str, bytes]]:
    return [
        ("reason", reason.encode()),
        ("stage", stage.encode()),
        ("error", error[:2000].encode()),
        ("source_topic", source_topic.encode()),
        ("time", str(time.time_ns() // 1000).encode()),
    ]


async def send_dead_letter(
    topic: TopicT, value: bytes, key: bytes | None, *, reason: str, stage: str, error: str, source_topic: str
) -> Awaitable[RecordMetadata]:
    """Queue one dead letter; await the result to know Kafka has it."""
    headers = dead_letter_headers(reason=reason, stage=stage, error=error, source_topic=source_topic)
    return await topic.send(key=key, value=value, headers=headers)
