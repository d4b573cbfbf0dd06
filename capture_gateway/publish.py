"""Raw events → envelopes → Kafka: the gateway's write path."""

from __future__ import annotations

from collections.abc import Sequence

from capture_gateway.producer import KafkaProducer, OutgoingMessage
from schemas.envelope import event_key, pack
from schemas.events import RawEvent
from schemas.serializer import AvroSerializer
from streams.topology import CaptureSpec

_SERIALIZER: AvroSerializer[dict[str, list[RawEvent]]] = AvroSerializer("raw_envelope")


def _key(event: RawEvent) -> bytes:
    return event_key(event["token"], event["distinct_id"])


def _size(event: RawEvent) -> int:
    return len(event["properties"]) + len(event["distinct_id"]) + len(event["event"]) + 120


class Publisher:
    """Writes a request's events as envelopes to the capture topics and awaits Kafka's ack."""

    def __init__(self, producer: KafkaProducer, capture: CaptureSpec) -> None:
        self._producer = producer
        self._capture = capture

    async def publish(self, events: Sequence[RawEvent], token: str, now: int) -> None:
        live = [e for e in events if not e["historical_migration"]]
        historical = [e for e in events if e["historical_migration"]]
        messages: list[OutgoingMessage] = []
        for topic, group in ((self._capture.topic, live), (self._capture.historical_topic, historical)):
            if group:
                messages.extend(await self._messages(topic, group, token, now))
        await self._producer.send(messages)

    async def _messages(self, topic: str, events: Sequence[RawEvent], token: str, now: int) -> list[OutgoingMessage]:
        partitions = await self._producer.partitions(topic)
        out = []
        for envelope in pack(events, key_of=_key, size_of=_size, partitions=partitions):
            headers: list[tuple[str, str | bytes | None]] = [
                ("token", token.encode()),
                ("count", str(len(envelope.events)).encode()),
                ("now", str(now).encode()),
            ]
            value = _SERIALIZER.encode({"events": envelope.events})
            out.append(OutgoingMessage(topic, envelope.partition, envelope.key, value, headers))
        return out
