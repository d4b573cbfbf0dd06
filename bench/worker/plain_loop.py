"""The plain confluent-kafka consumer of the worker bench: the same work as the Quix app, no framework.

A ``confluent_kafka.Consumer`` subscribed to the topology's pipeline sources (consumer group:
the topology's ``app_id``). Each message's envelope is decoded, its events run through the
stages and become rows (``bench.worker.work.ConsumerWork``), and its offset is stored; the
rows are inserted into the topology's ``events`` table when ``MAX_ROWS`` are pending or the
oldest waited ``FLUSH_SECONDS``, and the stored offsets are committed after each insert.

Run by ``bench.worker.consumers`` (pinned to one core) as ``python -m bench.worker.plain_loop
--topology T --stats S [--stage-calls message|event]`` with the stack's ``HEADWATER_*``
variables; it runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException

from bench.worker.work import RAW, STAGE_CALLS, STAGE_CALLS_HELP, ConsumerWork
from headwater.runtime.settings import Settings
from headwater.runtime.topology import load_topology
from headwater.stack.endpoints import resolve_endpoints

POLL_MESSAGES = 500
POLL_SECONDS = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", type=Path, required=True)
    parser.add_argument("--stats", type=Path, required=True, help="JSON file rewritten after every insert")
    parser.add_argument("--stage-calls", choices=STAGE_CALLS, default="event", help=STAGE_CALLS_HELP)
    args = parser.parse_args()
    settings = Settings()
    endpoints = resolve_endpoints(settings)
    topology = load_topology(args.topology)
    work = ConsumerWork(topology, endpoints, args.stats, settings.token_cache_seconds, args.stage_calls)
    consumer = Consumer({"bootstrap.servers": endpoints.kafka, "group.id": topology.app_id,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "log_level": 3})
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.subscribe(list(topology.pipeline.sources))
    try:
        while not stopping:
            for message in consumer.consume(num_messages=POLL_MESSAGES, timeout=POLL_SECONDS):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(error)
                work.add(work.rows(RAW.decode(message.value() or b"")["events"], message.topic() or ""))
                consumer.store_offsets(message)  # what the next commit covers: messages whose rows are taken
                if work.due:
                    work.flush()
                    consumer.commit(asynchronous=False)
            if work.due:
                work.flush()
                consumer.commit(asynchronous=False)
    finally:
        work.close()
        consumer.close()


if __name__ == "__main__":
    main()
