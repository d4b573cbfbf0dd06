"""The dead-letter message format, shared by the gateway and the workers.

A dead letter is one Kafka message on the dead-letter topic: the event as a one-event
envelope in the wire format it arrived in (so ``headwater dlq replay`` can put it back on its
source topic), with these headers: ``reason``, ``stage``, ``error``, ``source_topic``, ``time``
(microseconds since the epoch).
"""

from __future__ import annotations

import time

Headers = list[tuple[str, bytes]]


def dead_letter_headers(*, reason: str, stage: str, error: str, source_topic: str) -> Headers:
    return [
        ("reason", reason.encode()),
        ("stage", stage.encode()),
        ("error", error[:2000].encode()),
        ("source_topic", source_topic.encode()),
        ("time", str(time.time_ns() // 1000).encode()),
    ]
