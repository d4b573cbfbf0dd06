"""Routed events → envelopes → Kafka: the gateway's write path.

Live and historical events are packed per partition of their key ``token:distinct_id``;
overflow events have no key and the producer spreads their envelopes; dead letters are
one event per message with the dead-letter headers. Every envelope carries the headers
``token``, ``count`` and ``now``, plus ``distinct_id`` and ``event`` when all its events share
them, so consumers can filter without decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

from capture_gateway.producer import KafkaProducer, OutgoingMessage
from capture_gateway.routing import Routed
from schemas.dead_letter import Headers, dead_letter_headers
from schemas.envelope import Envelope, event_key, pack
from schemas.events import RawEvent
from schemas.serializer import AvroSerializer
from streams.topology import CaptureSpec

_SERIALIZER: AvroSerializer[dict[str, list[RawEvent]]] = AvroSerializer("raw_envelope")


def _key(event: RawEvent) -> bytes:
    return event_key(event["token"], event["distinct_id"])


def _bytes(text: str | None) -> int:
    if not text:
        return 0
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def event_size(event: RawEvent) -> int:
    """About how many bytes the event takes in an Avro envelope (its text fields plus fixed fields)."""
    return (_bytes(event["properties"]) + _bytes(event["distinct_id"]) + _bytes(event["event"])
            + _bytes(event["set"]) + _bytes(event["set_once"]) + 160)


def _headers(envelope: Envelope[RawEvent], token: str, now: int) -> Headers:
    headers: Headers = [("token", token.encode()), ("count", str(len(envelope.events)).encode()),
                        ("now", str(now).encode())]
    first = envelope.events[0]
    if all(e["distinct_id"] == first["distinct_id"] for e in envelope.events):
        headers.append(("distinct_id", first["distinct_id"].encode()))
    if all(e["event"] == first["event"] for e in envelope.events):
        headers.append(("event", first["event"].encode()))
    return headers


class Publisher:
    """Writes a request's routed events to Kafka and returns once Kafka acknowledged all of them."""

    def __init__(self, producer: KafkaProducer, capture: CaptureSpec, dead_letter_topic: str) -> None:
        self._producer = producer
        self._capture = capture
        self._dead_letter_topic = dead_letter_topic

    async def publish(self, routed: Routed, token: str, now: int) -> None:
        messages: list[OutgoingMessage] = []
        for topic, events in ((self._capture.topic, routed.live), (self._capture.historical_topic, routed.historical)):
            if events:
                messages += self._keyed(topic, await self._producer.partitions(topic), events, token, now)
        if routed.overflow:
            messages += self._unkeyed(self._capture.overflow_topic, routed.overflow, token, now)
        for event in routed.dead_letter:
            headers = dead_letter_headers(reason="event_restriction", stage="capture", error="",
                                          source_topic=self._capture.topic)
            value = _SERIALIZER.encode({"events": [event]})
            messages.append(OutgoingMessage(self._dead_letter_topic, None, _key(event), value, headers))
        if messages:
            await self._producer.send(messages)

    def _keyed(self, topic: str, partitions: int, events: Sequence[RawEvent], token: str,
               now: int) -> list[OutgoingMessage]:
        return [
            OutgoingMessage(topic, envelope.partition, envelope.key,
                            _SERIALIZER.encode({"events": envelope.events}), _headers(envelope, token, now))
            for envelope in pack(events, key_of=_key, size_of=event_size, partitions=partitions)
        ]

    def _unkeyed(self, topic: str, events: Sequence[RawEvent], token: str, now: int) -> list[OutgoingMessage]:
        # No key, no partition: the producer spreads them (librdkafka's random partitioner).
        return [
            OutgoingMessage(topic, None, None, _SERIALIZER.encode({"events": envelope.events}),
                            _headers(envelope, token, now))
            for envelope in pack(events, key_of=lambda _: b"", size_of=event_size, partitions=1)
        ]

