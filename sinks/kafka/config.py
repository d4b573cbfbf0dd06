"""The ``kafka`` sink's settings (``sinks[].config`` in topology.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sinks.filter import EventFilter
from sinks.registry import SinkConfig


class KafkaConfig(SinkConfig):
    """Re-publishes a topic's records (processed events, or window results) to another Kafka topic."""

    topic: str = Field(
        min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$",
        description="The destination topic. On the pipeline's Kafka it must be declared under `topics:` "
                    "(`headwater migrate` creates it; declare it `compacted: true` to keep one copy per key); "
                    "with `bootstrap` it must exist on that cluster.")
    format: Literal["json", "avro"] = Field(
        "json", description="`json`: each record as one JSON object; `avro`: each record as an envelope of one "
                            "record in the source topic's own Avro schema, in the Confluent wire format (magic "
                            "byte, schema id of `schemas/avro/registry.json`), with a `count: 1` header.")
    key: Literal["identity", "distinct_id", "none"] = Field(
        "identity", description="The message key. `identity`: an event's `uuid`, a window result's "
                                "`<window>:<key values>:<start>` (the key of the window's own topic); a redelivered "
                                "record gets the same key, so a compacted topic keeps one copy. `distinct_id`: the "
                                "event's distinct id (one person's events on one partition; no deduplication by "
                                "key). `none`: no key.")
    bootstrap: str | None = Field(
        None, description="`host:port[,host:port]` of another Kafka cluster; default the pipeline's Kafka.")
    delivery_timeout_seconds: float = Field(
        30.0, ge=1, le=3600, description="How long the producer tries to deliver a message before the flush "
                                         "backs off and sends it again (the batch waits meanwhile).")
    filter: EventFilter = Field(default_factory=EventFilter, description="Which records to publish (default: all).")

    def published_topics(self) -> list[str]:
        """The topic of the pipeline's own Kafka this sink writes (none when ``bootstrap`` names another cluster)."""
        return [self.topic] if self.bootstrap is None else []
