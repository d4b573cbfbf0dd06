"""``headwater dlq list | replay``: read the dead-letter topic and put events back where they came from.

Replay re-produces a dead letter's original message to the topic named in its
``source_topic`` header, keeping its key, so it is processed again after a fix. The dead
letters stay where they are (the topic's retention removes them); replaying one twice is
harmless because sinks keep one row per event uuid. Filters narrow what is replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from headwater.errors import ConfigError, NotRunningError
from schemas import registry
from schemas.errors import SchemaError
from schemas.serializer import AvroSerializer

FILTER_FIELDS = ("reason", "stage", "source_topic", "event", "distinct_id", "uuid")


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter topic, with what its headers and envelope say."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    stage: str
    error: str
    source_topic: str
    time: int
    events: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        first = self.events[0] if self.events else {}
        return {
            "partition": self.partition, "offset": self.offset, "time": self.time, "reason": self.reason,
            "stage": self.stage, "error": self.error, "source_topic": self.source_topic,
            "events": len(self.events), "uuid": first.get("uuid"), "event": first.get("event"),
            "distinct_id": first.get("distinct_id"),
        }

    def matches(self, filters: dict[str, str]) -> bool:
        values = self.summary()
        return all(str(values.get(field)) == wanted for field, wanted in filters.items())


def parse_filters(specs: list[str]) -> dict[str, str]:
    """``["reason=sink_rejected", "stage=prepare"]`` → a dict; unknown fields are an error."""
    filters: dict[str, str] = {}
    for spec in specs:
        field, sep, value = spec.partition("=")
        if not sep or field not in FILTER_FIELDS:
            raise ConfigError(f"bad filter {spec!r}: use FIELD=VALUE with FIELD one of {', '.join(FILTER_FIELDS)}")
        filters[field] = value
    return filters


def _decode(value: bytes) -> list[dict[str, Any]]:
    """The events of a dead letter's envelope, whichever subject wrote it."""
    try:
        schema_id = int.from_bytes(value[1:5], "big")
        subject = registry.by_id(schema_id).subject
        decoded: dict[str, Any] = AvroSerializer[dict[str, Any]](subject).decode(value)
    except (SchemaError, IndexError):
        return []
    events: list[dict[str, Any]] = decoded.get("events", [])
    return events


def _dead_letter(message: Message) -> DeadLetter:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = {k: v.decode(errors="replace") if isinstance(v, bytes) else str(v or "") for k, v in pairs}
    value = message.value() or b""
    return DeadLetter(
        partition=message.partition() or 0, offset=message.offset() or 0, key=message.key(), value=value,
        reason=headers.get("reason", ""), stage=headers.get("stage", ""), error=headers.get("error", ""),
        source_topic=headers.get("source_topic", ""), time=int(headers.get("time", "0") or 0),
        events=_decode(value),
    )


def read_dead_letters(bootstrap: str, topic: str) -> Iterator[DeadLetter]:
    """Every dead letter in ``topic``, partition by partition, oldest first."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "headwater-dlq-reader", "enable.auto.commit": False,
        "log_level": 0,
    })
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise NotRunningError(f"Kafka does not answer: {exc}") from exc
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise ConfigError(f"no topic {topic!r}: run `headwater migrate`")
        for partition in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if low >= high:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            while True:
                message = consumer.poll(10)
                if message is None:
                    raise NotRunningError(f"{topic}[{partition}] stopped answering before offset {high}")
                if message.error() is not None:
                    raise NotRunningError(f"reading {topic}: {message.error()}")
                yield _dead_letter(message)
                if (message.offset() or 0) + 1 >= high:
                    break
    finally:
        consumer.close()


def replay(bootstrap: str, topic: str, filters: dict[str, str], *, dry_run: bool,
           progress: Callable[[DeadLetter], None]) -> tuple[int, int]:
    """Re-produce matching dead letters to their source topics; return (replayed, skipped).

    Returns only after Kafka acknowledged every replayed message.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "log_level": 0})
    failures: list[str] = []

    def delivered(err: object, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    replayed = skipped = 0
    for letter in read_dead_letters(bootstrap, topic):
        if not letter.source_topic or not letter.matches(filters):
            skipped += 1
            continue
        if not dry_run:
            producer.produce(letter.source_topic, value=letter.value, key=letter.key, on_delivery=delivered,
                             headers=[("replayed_from", f"{topic}:{letter.partition}:{letter.offset}".encode())])
            producer.poll(0)
        replayed += 1
        progress(letter)
    if producer.flush(60) != 0 or failures:
        raise NotRunningError(f"Kafka did not acknowledge every replayed message: {failures[:3]}")
    return replayed, skipped
