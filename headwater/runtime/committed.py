"""Consumer groups' committed offsets, read by a consumer of the group that never joins it.

The admin client's ``list_consumer_group_offsets`` crashes the process (a NULL dereference in
librdkafka's ``rd_kafka_handle_OffsetFetch``) when the broker it asks answers NOT_COORDINATOR,
which a cluster of several brokers does while a group's coordinator is found or moves (a new
group, a broker that died). A consumer with the group's id asks through its own coordinator
logic, which handles that answer; without ``subscribe`` it never joins the group, and with
auto-commit off it never commits. One consumer per group is kept until ``close``.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, TopicPartition

Partition = tuple[str, int]


class CommittedOffsets:
    """``get(group, partitions)``: the committed offset of each partition that has one."""

    def __init__(self, bootstrap: str, timeout: float) -> None:
        self._bootstrap = bootstrap
        self._timeout = timeout
        self._consumers: dict[str, Consumer] = {}

    def get(self, group: str, partitions: Sequence[Partition]) -> dict[Partition, int]:
        """Raises ``KafkaException`` when Kafka does not answer within the timeout."""
        if not partitions:
            return {}
        consumer = self._consumers.get(group)
        if consumer is None:
            consumer = self._consumers[group] = Consumer({
                "bootstrap.servers": self._bootstrap, "group.id": group, "enable.auto.commit": False,
                "log_level": 0})
        found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=self._timeout)
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.error is None and tp.offset >= 0}

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()
