"""A historical import waits while live traffic has a backlog (``streams.priority``).

Both topics are filled before the worker starts, so both backlogs are there from its first
poll. Read with equal weight, the two would drain side by side: about half the historical
events would be processed before the last live one. With live first, the historical agent
gets to work once the live backlog is handled. The order is read where the pipeline writes
it, the processed topic (its messages' timestamps), not in ClickHouse, where one sink batch
may carry the last live events and the first historical ones together.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Producer

from headwater.runtime.projects import Project
from headwater.runtime.settings import Endpoints
from schemas.envelope import count_header
from schemas.events import RawEvent
from schemas.partitioner import partition_for
from schemas.raw_writer import encode_raw_envelope
from schemas.serializer import decode_envelope
from tests.support.clickhouse import wait_for_count
from tests.support.kafka import messages
from tests.support.metrics import scrape
from tests.support.processes import StartWorker
from tests.support.topology import Pipeline

EVENTS_PER_TOPIC = 40_000
PER_ENVELOPE = 100


def _fill(kafka: str, topic: str, partitions: int, token: str, historical: bool) -> None:
    now = int(time.time() * 1_000_000)
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 20})
    for start in range(0, EVENTS_PER_TOPIC, PER_ENVELOPE):
        distinct_id = f"user-{start // PER_ENVELOPE}"
        events = [RawEvent(uuid=str(uuid.uuid4()), event="import" if historical else "live", distinct_id=distinct_id,
                           token=token, timestamp=now, now=now, sent_at=None, ip=None, properties='{"$lib": "test"}',
                           set=None, set_once=None, historical_migration=historical, capture_warnings=[],
                           skip_person_processing=False) for _ in range(PER_ENVELOPE)]
        key = f"{token}:{distinct_id}".encode()
        producer.produce(topic, encode_raw_envelope(events), key=key, partition=partition_for(key, partitions),
                         headers=[count_header(len(events))])
        producer.poll(0)
    assert producer.flush(60) == 0


async def test_live_backlog_drains_before_the_historical_one(
    stack: Endpoints, pipeline: Pipeline, project: Project, start_worker: StartWorker,
) -> None:
    capture = pipeline.topology.capture
    _fill(stack.kafka, capture.topic, pipeline.partitions(capture.topic), project.api_token, historical=False)
    _fill(stack.kafka, capture.historical_topic, pipeline.partitions(capture.historical_topic), project.api_token,
          historical=True)
    table = f"events WHERE team_id = {project.id}"
    worker = start_worker(pipeline)
    await wait_for_count(stack, f"SELECT count() FROM {table}", 2 * EVENTS_PER_TOPIC, timeout=180, logs=[worker])
    output = pipeline.topology.pipeline.output
    written: list[tuple[int, bool, int]] = []  # (when the worker wrote it, historical?, events)
    for message in messages(stack.kafka, output, pipeline.partitions(output)):
        _, records = decode_envelope(message.value() or b"")
        for historical in (False, True):
            n = sum(1 for r in records if r["historical_migration"] is historical)
            if n:
                written.append((message.timestamp()[1], historical, n))
    last_live = max(when for when, historical, _ in written if not historical)
    before = sum(n for when, historical, n in written if historical and when < last_live)
    assert before < EVENTS_PER_TOPIC // 4, (
        f"{before} of {EVENTS_PER_TOPIC} historical events were processed before the last live one")
    waited = scrape(f"{worker.url}/metrics").value("headwater_stream_historical_wait_seconds_total")
    assert waited is not None
    assert waited > 0
