"""Kafka from the outside: topics read back with their envelopes decoded, consumer groups' offsets.

Reading never joins a consumer group (partitions are assigned by hand, nothing is committed),
and the offsets of a group are asked through the admin API, so looking at a running worker's
group does not make it rebalance.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka import Consumer as _Consumer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from schemas.serializer import AvroSerializer

RAW: AvroSerializer[dict[str, list[dict[str, Any]]]] = AvroSerializer("raw_envelope")


def _admin(bootstrap: str) -> AdminClient:
    """An admin client. Keep it in a variable until its futures are done: one that is garbage
    collected leaves them pending for ever."""
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def messages(bootstrap: str, topic: str, partitions: int, timeout: float = 300) -> Iterator[Message]:
    """Every message of ``topic`` from the beginning to its high watermark (as of the call), by partition."""
    consumer = _Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}", "log_level": 0,
                          "enable.auto.commit": False})
    try:
        ends: dict[int, int] = {}
        assignment = []
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        if not assignment:
            return
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(ends)} not read to their end within {timeout:g}s")
            for message in consumer.consume(num_messages=5000, timeout=1.0):
                if (error := message.error()) is not None:
                    raise KafkaException(error)
                partition, offset = message.partition() or 0, message.offset() or 0
                if offset < ends.get(partition, 0):
                    yield message
                if offset + 1 >= ends.get(partition, 0):
                    ends.pop(partition, None)
    finally:
        consumer.close()


@dataclass(frozen=True)
class KafkaRecord:
    """One message of a capture topic, its envelope decoded."""

    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    events: list[dict[str, Any]]


def read_topic(bootstrap: str, topic: str, partitions: int) -> list[KafkaRecord]:
    """Every message of ``topic`` (raw envelopes), by partition then offset."""
    records = [KafkaRecord(m.partition() or 0, m.offset() or 0, m.key(), _headers(m),
                           RAW.decode(m.value() or b"")["events"])
               for m in messages(bootstrap, topic, partitions)]
    return sorted(records, key=lambda r: (r.partition, r.offset))


def read_uuids(bootstrap: str, topic: str, partitions: int) -> list[str]:
    """Every event uuid in ``topic``'s envelopes."""
    return [e["uuid"] for record in read_topic(bootstrap, topic, partitions) for e in record.events]


def _headers(message: Message) -> dict[str, bytes]:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw  # a consumed message has a list; the stubs allow both
    return {k: v.encode() if isinstance(v, str) else v or b"" for k, v in pairs}


@dataclass
class EventCount:
    messages: int = 0
    events_by_header: int = 0  # what the envelopes' ``count`` headers say
    events_decoded: int = 0


def count_events(bootstrap: str, topics: Mapping[str, int]) -> dict[str, EventCount]:
    """Per topic (name → partitions): messages, and events by header and by decoding every envelope."""
    counts: dict[str, EventCount] = {}
    for topic, partitions in topics.items():
        total = counts[topic] = EventCount()
        for message in messages(bootstrap, topic, partitions):
            total.messages += 1
            total.events_by_header += int(_headers(message).get("count") or b"0")
            total.events_decoded += len(RAW.decode(message.value() or b"")["events"])
    return counts


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = _admin(bootstrap)
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        future.result()


def delete_topics(bootstrap: str, names: list[str]) -> dict[str, str]:
    """Delete ``names``; the ones that could not be deleted, with why."""
    if not names:
        return {}
    failed: dict[str, str] = {}
    admin = _admin(bootstrap)
    for name, future in admin.delete_topics(names, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            failed[name] = str(exc)
    return failed


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    """The offsets ``group`` committed on each partition of ``topic`` (None: nothing committed)."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    admin = _admin(bootstrap)
    answer = admin.list_consumer_group_offsets([request], request_timeout=10)[group].result()
    return {tp.partition: None if tp.offset == OFFSET_INVALID else tp.offset for tp in answer.topic_partitions}


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = _Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}", "log_level": 0})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def lag(bootstrap: str, group: str, topics: Mapping[str, int]) -> int:
    """Messages of ``topics`` (name → partitions) that ``group`` has not committed yet."""
    behind = 0
    for topic, partitions in topics.items():
        offsets = committed(bootstrap, group, topic, partitions)
        for partition, high in high_watermarks(bootstrap, topic, partitions).items():
            behind += high - (offsets.get(partition) or 0)
    return behind


def assigned(bootstrap: str, group: str) -> set[tuple[str, int]]:
    """The partitions ``group``'s members hold, once the group is stable (else none)."""
    admin = _admin(bootstrap)
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    if description.state != ConsumerGroupState.STABLE:
        return set()
    return {(tp.topic, tp.partition) for member in description.members
            for tp in (member.assignment.topic_partitions if member.assignment else [])}


def holders(bootstrap: str, group: str, topic: str) -> int:
    """How many members of ``group`` hold partitions of ``topic``, once the group is stable (else 0)."""
    admin = _admin(bootstrap)
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    if description.state != ConsumerGroupState.STABLE:
        return 0
    return sum(1 for member in description.members
               if member.assignment and any(tp.topic == topic for tp in member.assignment.topic_partitions))
