"""Where each person event came from, so a batch read again after a crash is not applied twice.

A worker killed after its person transaction committed but before Kafka took the batch's
offsets reads those events again. Applied again they would not be harmless: a ``$set`` of an
older event would overwrite what a later event on another partition set since. So every person
write also moves, in its transaction, how far each source partition's person updates are
applied (``person_offsets``), and a batch that finds it already applied some of its events
leaves those out: they carry the person as it is now.

Only events that can change persons (``$set``, ``$set_once``, ``$unset``, a merge) move the
offsets: a batch with none of them (known persons, events that only create one) still needs no
Postgres round trip, and reading such an event again changes nothing. A batch with one costs one
transaction, even when its updates turn out to change nothing: that, too, must be recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from headwater.errors import Unavailable
from streams.event import Order, Partition, Position

Progress = Mapping[Partition, tuple[Order, Order]]
"""Per partition, the first and last place (offset, index in the envelope) of the person updates
a write applies. The index matters: the stage runner may split a failing batch in halves, and a
half can end inside an envelope."""


def progress_of(positions: Iterable[Position]) -> dict[Partition, tuple[Order, Order]]:
    """The first and last place per partition of ``positions``."""
    spans: dict[Partition, tuple[Order, Order]] = {}
    for p in positions:
        first, last = spans.get(p.key, (p.order, p.order))
        spans[p.key] = (min(first, p.order), max(last, p.order))
    return spans


ZERO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"
"""``str(Uuid(0, 0))``: what a broker that has no topic ids answers."""


class TopicIds(Protocol):
    """Kafka's id of each topic (a topic created again gets a new one)."""

    async def __call__(self, topics: Collection[str]) -> Mapping[str, str]: ...

    def forget(self, topics: Collection[str]) -> None:
        """Drop what is known of ``topics``: the next call asks the broker."""
        ...


class KafkaTopicIds:
    """Topic ids from the broker (``describe_topics``), asked once per topic for the worker's life."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._known: dict[str, str] = {}

    async def __call__(self, topics: Collection[str]) -> Mapping[str, str]:
        missing = [t for t in topics if t not in self._known]
        if missing:
            self._known.update(await asyncio.to_thread(self._describe, missing))
        return {t: self._known[t] for t in topics}

    def forget(self, topics: Collection[str]) -> None:
        """Ask the broker again next time (a topic may have been deleted and created again)."""
        for topic in topics:
            self._known.pop(topic, None)

    def _describe(self, topics: list[str]) -> dict[str, str]:
        from confluent_kafka import KafkaException, TopicCollection
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self._bootstrap})
        try:
            futures = admin.describe_topics(TopicCollection(topics), request_timeout=10)
            ids = {name: str(future.result().topic_id) for name, future in futures.items()}
        except KafkaException as exc:
            raise Unavailable(f"cannot read the ids of topics {topics} from Kafka: {exc}",
                              "persons_unavailable") from exc
        # a broker without topic ids answers the zero id: then the name is all that tells topics apart
        return {name: topic_id if topic_id != ZERO_TOPIC_ID else f"name:{name}" for name, topic_id in ids.items()}
