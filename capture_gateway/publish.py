"""Routed events → envelopes → Kafka: the gateway's write path, with group commit.

Requests hand their routed events to ``Publisher.publish`` and wait. The first request of an
event-loop turn schedules a flush for the next turn, so every request that reached the write
step meanwhile goes out together: one envelope per topic, token and partition for all of them,
instead of one per request. Under load that makes envelopes of many events out of single-event
requests (fewer Avro calls, produce calls, delivery reports, and Kafka messages for the broker
and the workers); when idle a flush holds one request and adds no waiting.

Live and historical events are packed per partition of their key ``token:distinct_id``, in
arrival order; overflow events have no key and the producer spreads their envelopes; dead
letters are one event per message with the dead-letter headers. Every envelope carries the
headers ``token``, ``count`` and ``now`` (the capture time of its first event), plus
``distinct_id`` and ``event`` when all its events share them, so consumers can filter without
decoding.

A request returns when Kafka acknowledged every message holding one of its events, and raises
``headwater.errors.Unavailable`` when any of them failed or was not acknowledged in time (other requests
of the same flush are answered by their own messages).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from capture_gateway import telemetry
from capture_gateway.deadlines import Deadlines
from capture_gateway.producer import KafkaProducer, OutgoingMessage
from capture_gateway.routing import Routed
from headwater.errors import Unavailable
from headwater.runtime.topology import CaptureSpec
from schemas.dead_letter import Headers, dead_letter_headers
from schemas.envelope import count_header, event_key, pack
from schemas.events import RawEvent
from schemas.raw_writer import encode_raw_envelope


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


def _headers(events: Sequence[RawEvent], token: str) -> Headers:
    first = events[0]
    headers: Headers = [("token", token.encode()), count_header(len(events)),
                        ("now", str(first["now"]).encode())]
    if all(e["distinct_id"] == first["distinct_id"] for e in events):
        headers.append(("distinct_id", first["distinct_id"].encode()))
    if all(e["event"] == first["event"] for e in events):
        headers.append(("event", first["event"].encode()))
    return headers


class _Waiter:
    """One request in a flush: done when none of its messages is outstanding."""

    __slots__ = ("future", "outstanding")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.outstanding = 0

    def fail(self, error: str) -> None:
        if not self.future.done():
            self.future.set_exception(Unavailable(error, "kafka_unavailable"))

    def delivered(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0 and not self.future.done():
            self.future.set_result(None)


_Tagged = tuple[RawEvent, _Waiter]  # an event and the request it came with


@dataclass
class _TokenGroup:
    """A flush's events of one token, by destination."""

    live: list[_Tagged] = field(default_factory=list)
    historical: list[_Tagged] = field(default_factory=list)
    overflow: list[_Tagged] = field(default_factory=list)
    dead_letter: list[_Tagged] = field(default_factory=list)


def _tagged_key(item: _Tagged) -> bytes:
    return _key(item[0])


def _tagged_size(item: _Tagged) -> int:
    return event_size(item[0])


def _no_key(_: _Tagged) -> bytes:
    return b""


class _Delivery:
    """The requests one message carries events of; settles them when Kafka reports on it."""

    __slots__ = ("waiters",)

    def __init__(self, waiters: set[_Waiter]) -> None:
        self.waiters = waiters
        for waiter in waiters:
            waiter.outstanding += 1

    def __call__(self, error: str | None) -> None:
        for waiter in self.waiters:
            if error is None:
                waiter.delivered()
            else:
                waiter.fail(f"Kafka did not take the message: {error}")


class Publisher:
    """Writes requests' routed events to Kafka, a loop turn's requests at a time (group commit)."""

    def __init__(self, producer: KafkaProducer, capture: CaptureSpec, dead_letter_topic: str,
                 sweep_interval: float = 0.25) -> None:
        self._producer = producer
        self._capture = capture
        self._dead_letter_topic = dead_letter_topic
        self._queue: dict[str, _TokenGroup] = {}
        self._queued: list[_Waiter] = []
        self._flushes: Deadlines[tuple[_Waiter, ...]] = Deadlines(producer.timeout + 2.0, self._expire,
                                                                         interval=sweep_interval)

    async def publish(self, routed: Routed, token: str) -> None:
        """Return once Kafka acknowledged every written event of ``routed``; else ``headwater.errors.Unavailable``."""
        if not routed.written:
            return
        for topic, events in ((self._capture.topic, routed.live), (self._capture.historical_topic, routed.historical)):
            if events and self._producer.partitions_stale(topic):
                await self._producer.partitions(topic)  # the flush uses the count cached here
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future())
        group = self._queue.get(token)
        if group is None:
            group = self._queue[token] = _TokenGroup()
        group.live += [(e, waiter) for e in routed.live]
        group.historical += [(e, waiter) for e in routed.historical]
        group.overflow += [(e, waiter) for e in routed.overflow]
        group.dead_letter += [(e, waiter) for e in routed.dead_letter]
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append(waiter)
        await waiter.future

    def _flush(self) -> None:
        queue, waiters = self._queue, tuple(self._queued)
        self._queue, self._queued = {}, []
        messages: list[tuple[OutgoingMessage, _Delivery]] = []
        for token, group in queue.items():
            messages += self._messages(token, group)
        telemetry.FLUSH_MESSAGES.observe(len(messages))
        telemetry.FLUSH_REQUESTS.observe(len(waiters))
        self._flushes.add(waiters)
        for index, (message, delivery) in enumerate(messages):
            try:
                self._producer.produce(message, delivery)
            except Unavailable as exc:  # what was produced still reports; the rest fails now
                for _, unsent in messages[index:]:
                    for waiter in unsent.waiters:
                        waiter.fail(exc.message)
                break
        # Settled or not, a flush leaves the deadline list once all its requests are answered.
        asyncio.gather(*(w.future for w in waiters), return_exceptions=True).add_done_callback(
            lambda _: self._flushes.discard(waiters))

    def _messages(self, token: str, group: _TokenGroup) -> list[tuple[OutgoingMessage, _Delivery]]:
        out: list[tuple[OutgoingMessage, _Delivery]] = []
        for topic, tagged in ((self._capture.topic, group.live), (self._capture.historical_topic, group.historical)):
            if tagged:
                partitions = self._producer.cached_partitions(topic) or 1
                for envelope in pack(tagged, key_of=_tagged_key, size_of=_tagged_size, partitions=partitions):
                    out.append(self._message(topic, envelope.partition, envelope.key, envelope.events, token))
        if group.overflow:  # no key, no partition: the producer spreads them (librdkafka's random partitioner)
            for envelope in pack(group.overflow, key_of=_no_key, size_of=_tagged_size, partitions=1):
                out.append(self._message(self._capture.overflow_topic, None, None, envelope.events, token))
        for event, waiter in group.dead_letter:
            headers = dead_letter_headers(reason="event_restriction", stage="capture", error="",
                                          source_topic=self._capture.topic)
            value = encode_raw_envelope([event])
            message = OutgoingMessage(self._dead_letter_topic, None, _key(event), value, headers)
            out.append((message, _Delivery({waiter})))
        return out

    @staticmethod
    def _message(topic: str, partition: int | None, key: bytes | None, tagged: Sequence[_Tagged],
                 token: str) -> tuple[OutgoingMessage, _Delivery]:
        events = [event for event, _ in tagged]
        value = encode_raw_envelope(events)
        message = OutgoingMessage(topic, partition, key, value, _headers(events, token))
        return message, _Delivery({waiter for _, waiter in tagged})

    def _expire(self, waiters: tuple[_Waiter, ...]) -> None:
        for waiter in waiters:
            waiter.fail(f"Kafka did not acknowledge within {self._producer.timeout:.0f}s")

    async def close(self) -> None:
        await self._flushes.close()
