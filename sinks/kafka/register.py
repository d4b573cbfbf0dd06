"""Registers the ``kafka`` sink type: its config model and how it is built."""

from __future__ import annotations

from functools import partial

from headwater.runtime.settings import Endpoints
from sinks.kafka.client import connect
from sinks.kafka.config import KafkaConfig
from sinks.kafka.sink import KafkaSink
from sinks.registry import register_sink


def build(name: str, config: KafkaConfig, endpoints: Endpoints) -> KafkaSink:
    bootstrap = config.bootstrap or endpoints.kafka
    producer = partial(connect, bootstrap, f"headwater-sink-{name}", config.delivery_timeout_seconds)
    return KafkaSink(name, config, bootstrap, producer, own_cluster=config.bootstrap is None)


KAFKA_SINK = register_sink(
    "kafka", KafkaConfig, build,
    "Re-publishes records (filtered events, window results) to a Kafka topic, one JSON or Avro message each, "
    "keyed by the record's identity; at least once.")
