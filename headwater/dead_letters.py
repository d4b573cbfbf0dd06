"""``headwater dlq list | replay | purge``: read the dead-letter topic, put events back where they
came from, and remove what was put back.

Replay re-produces a dead letter's original message to the topic named in its
``source_topic`` header, keeping its key, so it is processed again after a fix; a sink's
letters (stage ``sink:<name>``) go to that sink instead (``Redelivery``,
``headwater.sink_replay``), so the topic's other readers do not see them twice. Each replay
is recorded in Postgres (``dead_letter_replays``, once Kafka acknowledged it): ``list`` shows
when a letter was replayed, and a later replay skips it unless asked ``again``. The dead
letters stay in Kafka until ``purge`` deletes, per partition, the leading run of letters that
were all replayed (or the topic's retention removes them). Filters narrow what is replayed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from headwater.errors import ConfigError, NotRunningError
from schemas import registry
from schemas.envelope import count_header
from schemas.errors import SchemaError
from schemas.serializer import AvroSerializer

FILTER_FIELDS = ("reason", "stage", "source_topic", "event", "distinct_id", "uuid")
REDELIVERY_BATCH = 500
"""Dead letters given to a sink per flush when replaying."""


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
    replayed_at: str | None = None  # ISO time of its replay, if it was replayed

    @property
    def first_uuid(self) -> str:
        return str(self.events[0].get("uuid", "")) if self.events else ""

    def summary(self) -> dict[str, Any]:
        first = self.events[0] if self.events else {}
        return {
            "partition": self.partition, "offset": self.offset, "time": self.time, "reason": self.reason,
            "stage": self.stage, "error": self.error, "source_topic": self.source_topic,
            "events": len(self.events), "uuid": first.get("uuid"), "event": first.get("event"),
            "distinct_id": first.get("distinct_id"), "replayed_at": self.replayed_at,
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


def dead_letter_offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic``, its first and next offset (``high - low`` letters are there):
    how many dead letters there are, without reading them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "headwater-dlq-reader",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise NotRunningError(f"Kafka does not answer: {exc}") from exc
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise ConfigError(f"no topic {topic!r}: run `headwater migrate`")
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in sorted(info.partitions)}
    finally:
        consumer.close()


def read_dead_letters(bootstrap: str, topic: str, since: Mapping[int, int] | None = None) -> Iterator[DeadLetter]:
    """Every dead letter in ``topic``, partition by partition, oldest first; with ``since``
    (partition → offset), only those at or after that offset of their partition, so a reader
    that keeps up (the ops page) reads each letter once."""
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
            low = max(low, (since or {}).get(partition, low))
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


class Replays:
    """The replay records of one dead-letter topic, in Postgres."""

    def __init__(self, dsn: str, topic: str) -> None:
        self._dsn = dsn
        self._topic = topic

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._dsn, autocommit=True)
        except psycopg.Error as exc:
            raise NotRunningError(f"Postgres does not answer: {exc}") from exc

    def known(self) -> dict[tuple[int, int], tuple[str, str]]:
        """(partition, offset) → (first event uuid, replay time) of every replayed letter."""
        with self._connect() as conn:
            rows = conn.execute('SELECT partition, "offset", event_uuid, replayed_at FROM dead_letter_replays '
                                "WHERE topic = %s", (self._topic,)).fetchall()
        return {(p, o): (u, t.isoformat(timespec="seconds")) for p, o, u, t in rows}

    def record(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        with self._connect() as conn:
            conn.execute(
                'INSERT INTO dead_letter_replays (topic, partition, "offset", event_uuid, source_topic) '
                "SELECT %s, * FROM unnest(%s::integer[], %s::bigint[], %s::text[], %s::text[]) "
                'ON CONFLICT (topic, partition, "offset") DO UPDATE SET replayed_at = now(), '
                "event_uuid = EXCLUDED.event_uuid, source_topic = EXCLUDED.source_topic",
                (self._topic, [d.partition for d in letters], [d.offset for d in letters],
                 [d.first_uuid for d in letters], [d.source_topic for d in letters]))

    def forget_before(self, partition: int, offset: int) -> None:
        with self._connect() as conn:
            conn.execute('DELETE FROM dead_letter_replays WHERE topic = %s AND partition = %s AND "offset" < %s',
                         (self._topic, partition, offset))

    def mark(self, letters: Iterator[DeadLetter]) -> Iterator[DeadLetter]:
        """``letters`` with ``replayed_at`` filled in from the records (a record of another letter
        at the same offset, from a recreated topic, does not count)."""
        known = self.known()
        for letter in letters:
            found = known.get((letter.partition, letter.offset))
            if found is not None and found[0] == letter.first_uuid:
                yield dataclasses.replace(letter, replayed_at=found[1])
            else:
                yield letter


class Redelivery(Protocol):
    """Where some dead letters go back to instead of their source topic (a sink's: ``headwater.sink_replay``)."""

    def handles(self, letter: DeadLetter) -> bool: ...

    def deliver(self, dead_letter_topic: str, letters: Sequence[DeadLetter]) -> dict[tuple[int, int], str]:
        """Deliver ``letters`` (all with one ``stage``); the (partition, offset) of those not taken, with why."""
        ...


@dataclass
class ReplayOutcome:
    """What ``replay`` did."""

    replayed: int = 0
    before: int = 0  # replayed before, skipped (``again`` replays them)
    skipped: int = 0  # not matching the filters
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)  # still failing, not recorded


def replay(bootstrap: str, topic: str, filters: dict[str, str], replays: Replays, *, dry_run: bool, again: bool,
           progress: Callable[[DeadLetter], None], redelivery: Redelivery | None = None) -> ReplayOutcome:
    """Put matching dead letters back: to ``redelivery`` for the letters it handles, else re-produced
    to their source topics.

    Letters replayed before are skipped unless ``again``. Returns only after Kafka acknowledged
    every re-produced message (and the redelivery took its letters), and records them then; a
    letter the redelivery did not take is in ``failed`` and not recorded.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "log_level": 0})
    failures: list[str] = []

    def delivered(err: object, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    outcome = ReplayOutcome()
    done: list[DeadLetter] = []
    held: dict[str, list[DeadLetter]] = {}  # by stage, for the redelivery

    def redeliver(letters: list[DeadLetter]) -> None:
        assert redelivery is not None
        refused = redelivery.deliver(topic, letters)
        for letter in letters:
            why = refused.get((letter.partition, letter.offset))
            if why is None:
                done.append(letter)
                progress(letter)
            else:
                outcome.failed.append((letter, why))

    for letter in replays.mark(read_dead_letters(bootstrap, topic)):
        if not letter.source_topic or not letter.matches(filters):
            outcome.skipped += 1
            continue
        if letter.replayed_at is not None and not again:
            outcome.before += 1
            continue
        if redelivery is not None and redelivery.handles(letter) and not dry_run:
            batch = held.setdefault(letter.stage, [])
            batch.append(letter)
            if len(batch) >= REDELIVERY_BATCH:
                redeliver(held.pop(letter.stage))
            continue
        if not dry_run:
            # the count header as every envelope has it: consumers size their batches by it
            headers: list[tuple[str, str | bytes | None]] = [
                ("replayed_from", f"{topic}:{letter.partition}:{letter.offset}".encode()),
                count_header(len(letter.events))]
            producer.produce(letter.source_topic, value=letter.value, key=letter.key, on_delivery=delivered,
                             headers=headers)
            producer.poll(0)
        done.append(letter)
        progress(letter)
    for letters in held.values():
        redeliver(letters)
    if producer.flush(60) != 0 or failures:
        raise NotRunningError(f"Kafka did not acknowledge every replayed message: {failures[:3]}")
    if not dry_run:
        replays.record(done)
    outcome.replayed = len(done)
    return outcome


def purge(bootstrap: str, topic: str, replays: Replays, *, dry_run: bool) -> dict[int, int]:
    """Delete, per partition, the leading dead letters that were all replayed; how many per partition.

    Kafka deletes only from the start of a partition, so a letter not replayed yet keeps itself
    and every letter after it.
    """
    cut: dict[int, int] = {}
    first: dict[int, int] = {}
    blocked: set[int] = set()
    for letter in replays.mark(read_dead_letters(bootstrap, topic)):
        first.setdefault(letter.partition, letter.offset)
        if letter.partition in blocked:
            continue
        if letter.replayed_at is None:
            blocked.add(letter.partition)
        else:
            cut[letter.partition] = letter.offset + 1
    counts = {p: offset - first[p] for p, offset in cut.items()}
    if dry_run or not cut:
        return counts
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    futures = admin.delete_records([TopicPartition(topic, p, offset) for p, offset in cut.items()])
    for partition, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            raise NotRunningError(f"Kafka did not delete the replayed letters of {topic}[{partition.partition}]: "
                                  f"{exc}") from exc
    for p, offset in cut.items():
        replays.forget_before(p, offset)
    return counts
