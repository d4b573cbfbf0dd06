"""The Kafka sink: one message per record, every one acknowledged by Kafka before ``flush`` returns.

``write`` only buffers. ``flush`` decodes the batch's envelopes, keeps the records the filter
takes, and queues one message per record (``messages``) on the producer: no network round
trip per record, the client batches them. Then it waits, once for the batch, until Kafka has
acknowledged every message (``acks=all``) or failed it:

- a transient failure (a broker down, a timeout) leaves the message to send again: the flush
  backs off (``sinks.retry``, counted in ``headwater_sink_retries``) and resends only what was
  not acknowledged, until it is;
- a message Kafka refuses for good (too large, an invalid record) comes back ``Rejected`` and is
  dead-lettered. Kafka may refuse a whole client batch for one message in it, so a refused
  message that was sent along with others is sent again alone before it counts as refused;
- an unknown topic or a denied write is a ``PermanentSinkError`` saying what to do; the worker
  stops without committing the batch.

Envelopes whose records cannot be decoded come back ``Unwritten``.

**Delivery is at least once.** Returning from ``flush`` is what lets the worker commit the
source offsets, so a worker that dies between the two, or a flush that resends a message whose
acknowledgement was lost, publishes some records again. They are published with the same key
and value (the keys are stable, ``messages``): a compacted destination topic keeps one copy of
each, and a consumer that keeps the last value per key sees each record once. Ordering is the
source partition's order within one send; a resent message may land after later ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from schemas.errors import SchemaError
from sinks import telemetry
from sinks.base import FlushResult, Health, Record, Rejected, SourceEnvelope, Unwritten
from sinks.errors import PermanentSinkError, RetriableSinkError
from sinks.kafka.client import Headers, Outcome, Producer, classify, config_problem, unknown_topic
from sinks.kafka.config import KafkaConfig
from sinks.kafka.messages import Encoder
from sinks.retry import retrying

log = logging.getLogger("headwater.sinks.kafka")

REPORT_WAIT = 1.0
"""Seconds one wait for delivery reports lasts before looking again (the flush can be cancelled between)."""
QUEUE_FULL_WAIT = 0.1
"""Seconds to serve delivery reports when the producer's local queue is full, before queueing again."""
METADATA_TIMEOUT = 5.0


@dataclass
class Outgoing:
    """One record's message, and whether it must be sent on its own (see the module docstring)."""

    record: Record
    key: bytes | None
    value: bytes
    headers: Headers | None
    alone: bool = False


@dataclass
class Delivery:
    """What is left of one flush's messages across its attempts."""

    waiting: list[Outgoing]
    rejected: list[Rejected] = field(default_factory=list)


class KafkaSink:
    """A ``sinks.base.Sink`` publishing to a Kafka topic; see the module docstring."""

    def __init__(self, name: str, config: KafkaConfig, bootstrap: str, connect: Callable[[], Producer], *,
                 own_cluster: bool = True) -> None:
        """``connect()`` makes the producer (``sinks.kafka.client.connect`` with the settings bound)."""
        self.name = name
        self._config = config
        self._topic = config.topic
        self._bootstrap = bootstrap
        self._own_cluster = own_cluster
        self._connect = connect
        self._producer: Producer | None = None
        self._encoder = Encoder(config)
        self._pending: list[SourceEnvelope] = []
        self._retries = telemetry.RETRIES.labels(name)

    def _client(self) -> Producer:
        if self._producer is None:
            self._producer = self._connect()
        return self._producer

    # -- the contract ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Check that the topic exists (an unreachable cluster is left to ``flush`` to retry)."""
        try:
            await self._check_topic()
        except RetriableSinkError as exc:
            log.warning("%s: cannot check topic %s yet (%s); the flush retries", self.name, self._topic, exc)

    async def healthcheck(self) -> Health:
        try:
            partitions = await self._check_topic()
        except (RetriableSinkError, PermanentSinkError) as exc:
            return Health(False, f"Kafka topic {self._topic}: {exc}")
        return Health(True, f"Kafka topic {self._topic} at {self._bootstrap} answers ({partitions} partitions)")

    def write(self, envelopes: Sequence[SourceEnvelope]) -> None:
        self._pending.extend(envelopes)

    async def flush(self) -> FlushResult:
        envelopes, self._pending = self._pending, []
        outgoing: list[Outgoing] = []
        unwritten: list[Unwritten] = []
        for envelope in envelopes:
            try:
                records = envelope.records()
                subject = envelope.subject
            except SchemaError as exc:
                unwritten.append(Unwritten(envelope, str(exc)))
                continue
            for record in records:
                if self._config.filter.takes(record):
                    value, headers = self._encoder.value(subject, record)
                    outgoing.append(Outgoing(record, self._encoder.key(record), value, headers))
        delivery = Delivery(outgoing)
        if outgoing:
            await retrying(lambda: self._attempt(delivery), retries=self._retries, log=log,
                           what=f"{self.name}: publishing to {self._topic}")
        return FlushResult(written=len(outgoing) - len(delivery.rejected), rejected=delivery.rejected,
                           unwritten=unwritten)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:  # what is still queued belongs to a batch that was not committed
            producer.purge()
            await asyncio.to_thread(producer.flush, 0)

    # -- sending --------------------------------------------------------------------------------

    async def _attempt(self, delivery: Delivery) -> None:
        """Send what ``delivery`` still waits for: together, then each message to be sent alone on its
        own; ``RetriableSinkError`` if some are not acknowledged (they stay waiting)."""
        failed: list[tuple[Outgoing, KafkaError]] = []
        while delivery.waiting:
            together = [o for o in delivery.waiting if not o.alone]
            groups = ([together] if together else []) + [[o] for o in delivery.waiting if o.alone]
            delivery.waiting = []
            for group in groups:
                for out, error, own in await self._send(group):
                    if error is None:
                        continue
                    outcome = classify(error)
                    if outcome is Outcome.CONFIG:
                        raise PermanentSinkError(
                            f"{self.name}: " + config_problem(error, self._topic, self._bootstrap, self._own_cluster))
                    if outcome is Outcome.REFUSED and (own or len(group) == 1):
                        delivery.rejected.append(Rejected(out.record, f"Kafka refused the message: {error.str()}"))
                    elif outcome is Outcome.REFUSED:
                        out.alone = True  # maybe refused for a neighbour in its client batch
                        delivery.waiting.append(out)
                    else:
                        failed.append((out, error))
                        if error.fatal():
                            self._producer = None  # an idempotent producer in a fatal state: start a new one
        if failed:
            delivery.waiting = [out for out, _ in failed]
            raise RetriableSinkError(f"{len(failed)} message(s) not acknowledged: {failed[0][1].str()}")

    async def _send(self, group: list[Outgoing]) -> list[tuple[Outgoing, KafkaError | None, bool]]:
        """Queue every message of ``group``, then wait once for all their delivery reports.

        Each report is ``(message, error or None, own)``; ``own`` when the client refused that
        message by itself at once (so no neighbour can be the cause)."""
        producer = self._client()
        reports: list[tuple[Outgoing, KafkaError | None, bool]] = []

        def reporter(out: Outgoing) -> Any:
            def delivered(error: KafkaError | None, _message: Any) -> None:
                reports.append((out, error, False))
            return delivered

        for out in group:
            while True:
                try:
                    producer.produce(self._topic, value=out.value, key=out.key, headers=out.headers,
                                     on_delivery=reporter(out))
                except BufferError:  # the local queue is full: let some deliveries finish first
                    await asyncio.to_thread(producer.poll, QUEUE_FULL_WAIT)
                    continue
                except KafkaException as exc:
                    reports.append((out, exc.args[0], True))
                break
        while len(reports) < len(group):
            await asyncio.to_thread(producer.flush, REPORT_WAIT)
        return reports

    async def _check_topic(self) -> int:
        """The topic's partition count: ``PermanentSinkError`` when it does not exist or may not be
        written, ``RetriableSinkError`` when the cluster does not answer."""
        producer = self._client()
        try:
            metadata = await asyncio.to_thread(producer.list_topics, self._topic, METADATA_TIMEOUT)
        except KafkaException as exc:
            raise RetriableSinkError(f"Kafka at {self._bootstrap} does not answer: {exc.args[0].str()}") from exc
        found = metadata.topics.get(self._topic)
        if found is None:
            raise PermanentSinkError(unknown_topic(self._topic, self._bootstrap, self._own_cluster))
        if found.error is not None:
            if classify(found.error) is Outcome.CONFIG:
                raise PermanentSinkError(config_problem(found.error, self._topic, self._bootstrap, self._own_cluster))
            raise RetriableSinkError(f"topic {self._topic}: {found.error.str()}")
        return len(found.partitions)
