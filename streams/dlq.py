"""Sending dead letters from a Faust worker (format: ``schemas.dead_letter``)."""

from __future__ import annotations

from collections.abc import Awaitable

from faust.types import TopicT
from faust.types.tuples import RecordMetadata

from schemas.dead_letter import dead_letter_headers


async def send_dead_letter(
    topic: TopicT, value: bytes, key: bytes | None, *, reason: str, stage: str, error: str, source_topic: str
) -> Awaitable[RecordMetadata]:
    """Queue one dead letter; await the result to know Kafka has it."""
    headers = dead_letter_headers(reason=reason, stage=stage, error=error, source_topic=source_topic)
    return await topic.send(key=key, value=value, headers=headers)
