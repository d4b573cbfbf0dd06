"""The Kafka side of the sink: the producer it uses (``Producer``, the I/O seam), how one is
configured, and what each delivery error means.

``confluent_kafka.Producer`` is the real one. Its settings make a message acknowledged only
once every in-sync replica has it (``acks=all``) and let the client retry a send without
writing it twice (``enable.idempotence``); batches are lz4-compressed, and keys go to
partitions as the Java client puts them (``murmur2_random``), so that other Kafka clients
partition by key the same way.

A delivery error is one of three things (``classify``):

- ``REFUSED``: Kafka refuses this message for good (too large, an invalid record): dead-letter it;
- ``CONFIG``: no message can go there (no such topic, not authorized): stop, saying what to do;
- ``TRANSIENT``: anything else (a broker down, a timeout, a leader moving): send it again later.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError

log = logging.getLogger("headwater.sinks.kafka.client")

DeliveryCallback = Callable[[KafkaError | None, Any], None]
Headers = list[tuple[str, str | bytes | None]]


class Producer(Protocol):
    """What the sink uses of ``confluent_kafka.Producer``; tests pass a fake with the same calls."""

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, *,
                headers: Headers | None = None, on_delivery: DeliveryCallback | None = None) -> None:
        """Queue a message (no I/O here); ``BufferError`` when the local queue is full, ``KafkaException``
        when the client refuses it at once (larger than ``message.max.bytes``, an unknown topic)."""
        ...

    def poll(self, timeout: float) -> int:
        """Serve delivery reports (calls ``on_delivery``), waiting up to ``timeout`` seconds."""
        ...

    def flush(self, timeout: float) -> int:
        """Serve delivery reports until none is outstanding or ``timeout`` passed; returns how many remain."""
        ...

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        """The cluster's metadata (of ``topic`` only): ``.topics[name].error``, ``.partitions``."""
        ...

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None: ...


def producer_config(bootstrap: str, client_id: str, delivery_timeout: float) -> dict[str, Any]:
    """The settings of the sink's producer; see the module docstring."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 5,
        "partitioner": "murmur2_random",
        "message.timeout.ms": int(delivery_timeout * 1000),
        "logger": log,
        "log_level": 2,  # critical only: a broker that is down surfaces as the flush's retry warnings
        "error_cb": _client_error,
    }


def _client_error(error: KafkaError) -> None:
    """The client's own errors (all brokers down, ...): the delivery reports say the same, per message."""
    log.debug("Kafka client: %s", error.str())


def connect(bootstrap: str, client_id: str, delivery_timeout: float) -> Producer:
    """A ``confluent_kafka.Producer`` (it connects in the background; nothing here waits for the cluster)."""
    from confluent_kafka import Producer as KafkaProducer

    producer: Producer = KafkaProducer(producer_config(bootstrap, client_id, delivery_timeout))
    return producer


class Outcome(enum.Enum):
    REFUSED = "refused"
    CONFIG = "config"
    TRANSIENT = "transient"


REFUSED_CODES = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG,
                           KafkaError.INVALID_MSG_SIZE, KafkaError.RECORD_LIST_TOO_LARGE,
                           KafkaError.INVALID_TIMESTAMP})
"""Errors about the message itself: the same message fails the same way."""
UNKNOWN_TOPIC_CODES = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                 KafkaError._UNKNOWN_PARTITION, KafkaError.TOPIC_EXCEPTION})
DENIED_CODES = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                          KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION})


def classify(error: KafkaError) -> Outcome:
    """What a delivery error means for the message; see the module docstring."""
    code = error.code()
    if code in REFUSED_CODES:
        return Outcome.REFUSED
    if code in UNKNOWN_TOPIC_CODES or code in DENIED_CODES:
        return Outcome.CONFIG
    return Outcome.TRANSIENT


def config_problem(error: KafkaError, topic: str, bootstrap: str, own_cluster: bool) -> str:
    """What to do about a ``CONFIG`` error, in a sentence."""
    if error.code() in DENIED_CODES:
        return (f"Kafka at {bootstrap} does not let this worker write topic {topic!r} ({error.str()}): "
                "grant its principal WRITE and DESCRIBE on the topic, or fix the credentials")
    return unknown_topic(topic, bootstrap, own_cluster) + f" ({error.str()})"


def unknown_topic(topic: str, bootstrap: str, own_cluster: bool) -> str:
    if own_cluster:
        return (f"topic {topic!r} does not exist in Kafka at {bootstrap}: declare it under `topics:` in "
                "topology.yaml and run `headwater migrate`, which creates it")
    return (f"topic {topic!r} does not exist in Kafka at {bootstrap} (`bootstrap`): create it on that cluster "
            "(`headwater migrate` creates topics on the pipeline's own Kafka only)")
