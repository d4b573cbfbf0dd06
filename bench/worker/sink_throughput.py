"""The sinks part: each sink driven as the worker drives it, against a plain loop writing the same records to the
same destination, in the same run.

**Records.** ``--sinks-events`` (100,000) processed events shaped like the worker's output on the bench's
posthog-js-like events (``bench.inprocess.event``: ~530 bytes of properties, a person id and a few person
properties), event times 10 ms apart from a fixed hour (one hour: one event-time bucket of the files sink). They
are packed as the pipeline packs them (``schemas.envelope.pack`` per pipeline batch of
``streams.app.PIPELINE_BATCH_EVENTS``, ``streams.pipeline.PROCESSED_ENVELOPE_BYTES`` at most, over the
processed topic's partitions), each envelope the real Avro one (``schemas.serializer.encode_envelope(
"processed_envelope", …)``) with its offset in its partition, and cut into sink batches as
``streams.batching.consume_in_batches`` cuts them: envelopes until ``BatchSpec().max_events`` (20,000) events.
Built once, outside every clock; every run gets the same bytes.

**Sink.** The registered sink type built as the worker builds it (``resolve_sink(type).build(name, config,
endpoints)``), ``start()`` outside the clock; then, per batch, what ``streams.app`` does: fresh
``SourceEnvelope`` objects with their count header and position, ``SinkAgent.handle(envelopes, batch)``,
and the flush the agent registered (``ToyBatch``: collects the flush, counts dead letters), on uvloop.

**Plain loop.** The same batches' message values, written to the same kind of destination as plainly as a
user would (each case's ``loop`` says how), synchronously, with the same codec settings as the sink so the
ratio measures the sink's machinery and not a codec choice.

**Rounds.** ``--sinks-rounds`` (3) rounds; in each, every case runs its sink and its loop back to back, the
sink first in rounds 1, 3, … and the loop first in rounds 2, 4, …, each into a fresh destination (a directory, a
table) that is read back outside the clock (every sent uuid exactly once, or the run is invalid) and
removed. Reported per case: the median records/s of each side and their ratio (target ≥ 0.8), the ratio of
each round (the noise), CPU µs/record of this process (the sink's threads included) and of the ClickHouse
owner, and the foreign CPU over each run.

**Adding a case** is one entry in ``CASES``: a ``SinkCase`` whose ``open`` makes a fresh ``Destination``
(the sink type and config to build, the plain loop, the read-back, the removal).
"""

from __future__ import annotations

import gc
import gzip
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx
import orjson
import uvloop
from confluent_kafka import Producer

from bench.console import step
from bench.cpu import CpuSampler
from bench.inprocess import event as bench_event
from bench.servers import Context
from bench.worker.measure import _foreign_percent, _services
from bench.worker.suite import settle
from headwater.runtime.gc_tuning import tune_gc
from headwater.runtime.settings import Endpoints
from headwater.runtime.topology import load_topology
from headwater.runtime.topology.model import BatchSpec
from schemas.envelope import pack
from schemas.serializer import decode_envelope, encode_envelope
from sinks.agent import SinkAgent
from sinks.base import SourceEnvelope, SourcePosition
from sinks.clickhouse.client import chdb_owner_url
from sinks.registry import resolve_sink
from sinks.webhook.signing import HEADER, sign
from sinks.webhook.sink import as_json
from streams.app import PIPELINE_BATCH_EVENTS, WORKER_GC_THRESHOLDS
from streams.pipeline import PROCESSED_ENVELOPE_BYTES, _processed_key, _processed_size
from tests.support import DEFAULT_TOPOLOGY
from tests.support.kafka import create_topic, delete_topics
from tests.support.kafka import messages as kafka_messages
from tests.support.receiver import Receiver

RATIO_TARGET = 0.8
SOURCE_TOPIC = "events_processed"
START_MICROS = 1_796_302_800 * 1_000_000  # 2026-12-03 13:00:00 UTC: every record in one hour
STEP_MICROS = 10_000  # 10 ms between two events: 100,000 events span 1,000 s
TEAM_ID = 1


# -- the records, envelopes and batches ---------------------------------------------------------------------


def processed_records(count: int) -> list[dict[str, Any]]:
    """``count`` processed events (``schemas/avro/processed_event``), like ``tests.support.records.processed``
    with the bench's posthog-js-like properties; see the module docstring."""
    out = []
    for n in range(count):
        shape = bench_event(n)
        at = START_MICROS + n * STEP_MICROS
        out.append({
            "uuid": str(uuid.UUID(int=(0x0193 << 112) | n)), "event": shape["event"],
            "properties": orjson.dumps(shape["properties"]).decode(), "timestamp": at, "team_id": TEAM_ID,
            "distinct_id": shape["distinct_id"], "elements_chain": "", "created_at": at + 2_000,
            "person_id": str(uuid.UUID(int=(0x0192 << 112) | (n % 5_000))),
            "person_properties": orjson.dumps({"plan": "pro", "$initial_browser": shape["properties"]["$browser"],
                                               "$initial_os": shape["properties"]["$os"]}).decode(),
            "person_created_at": START_MICROS - 86_400_000_000, "person_mode": "full",
            "group_0": "", "group_1": "", "group_2": "", "group_3": "", "group_4": "", "historical_migration": False,
        })
    return out


@dataclass(frozen=True)
class Message:
    """A message of the processed topic, as the sink agent's consumer gets it."""

    value: bytes
    key: bytes | None
    count: int
    position: SourcePosition


def processed_messages(records: Sequence[dict[str, Any]], partitions: int) -> list[Message]:
    """``records`` as the pipeline writes them to its output; see the module docstring."""
    offsets = [0] * partitions
    out = []
    for first in range(0, len(records), PIPELINE_BATCH_EVENTS):
        batch = records[first:first + PIPELINE_BATCH_EVENTS]
        for envelope in pack(batch, key_of=_processed_key, size_of=_processed_size,  # type: ignore[arg-type]
                             partitions=partitions, max_bytes=PROCESSED_ENVELOPE_BYTES):
            value = encode_envelope("processed_envelope", list(envelope.events))
            out.append(Message(value, envelope.key, len(envelope.events),
                               SourcePosition(SOURCE_TOPIC, envelope.partition, offsets[envelope.partition])))
            offsets[envelope.partition] += 1
    return out


def sink_batches(messages: Sequence[Message], max_events: int) -> list[list[Message]]:
    """Messages cut as ``consume_in_batches`` cuts them: a batch closes once it holds ``max_events`` events."""
    batches: list[list[Message]] = []
    current: list[Message] = []
    events = 0
    for message in messages:
        current.append(message)
        events += message.count
        if events >= max_events:
            batches.append(current)
            current, events = [], 0
    if current:
        batches.append(current)
    return batches


# -- a case ---------------------------------------------------------------------------------------------------


class Destination(Protocol):
    """One run's fresh destination: what the sink is built with, the plain loop into it, and the read-back."""

    sink_type: str

    def sink_config(self) -> dict[str, Any]:
        """The sink's ``config`` (as in topology.yaml), writing here."""
        ...

    def loop(self, batches: Sequence[Sequence[bytes]]) -> None:
        """The plain loop: each batch's message values, written here."""
        ...

    def read_back(self) -> list[str]:
        """The uuid of every record here (a record written twice: twice); problems raise ``AssertionError``."""
        ...

    def remove(self) -> None: ...


@dataclass(frozen=True)
class SinkCase:
    """A sink to measure: what it is, what its plain loop does, and how a run's destination is made."""

    sink: str  # the sink as configured, for the table
    loop: str  # what the plain loop does, for the table
    open: Callable[[Context, str], Destination]  # a fresh destination named ``name`` (unique per run)
    clickhouse: bool = False  # it writes to ClickHouse: let the owner settle before each run


def _records(values: Sequence[bytes]) -> list[dict[str, Any]]:
    return [record for value in values for record in decode_envelope(value)[1]]


class FilesDestination:
    """A directory under the run directory, for the ``files`` sink and a plain file-per-batch loop."""

    sink_type = "files"

    def __init__(self, root: Path, format_: str) -> None:
        self.root = root
        self.format = format_
        root.mkdir(parents=True)

    def sink_config(self) -> dict[str, Any]:
        return {"directory": str(self.root), "format": self.format}

    def loop(self, batches: Sequence[Sequence[bytes]]) -> None:
        for n, values in enumerate(batches):
            records = _records(values)
            if self.format == "jsonl":
                lines = b"".join(orjson.dumps(r) + b"\n" for r in records)
                (self.root / f"batch-{n:06d}.jsonl.gz").write_bytes(gzip.compress(lines, compresslevel=6))
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.Table.from_pylist(records), self.root / f"batch-{n:06d}.parquet",
                               compression="zstd")

    def read_back(self) -> list[str]:
        hidden = [p for p in self.root.rglob(".*") if p.is_file()]
        assert not hidden, f"temporary files left in {self.root}: {hidden[:3]}"
        uuids: list[str] = []
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            if path.name.endswith(".jsonl.gz"):
                uuids += [orjson.loads(line)["uuid"] for line in gzip.decompress(path.read_bytes()).splitlines()]
            elif path.name.endswith(".parquet"):
                import pyarrow.parquet as pq

                uuids += [str(u) for u in pq.read_table(path, columns=["uuid"]).column("uuid").to_pylist()]
            else:
                raise AssertionError(f"a file the run did not mean to write: {path}")
        return uuids

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def http_clickhouse(url: str) -> str:
    """The HTTP address the stack's ClickHouse answers on (the chDB owner's, or a server's)."""
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        return chdb_owner_url(Path(parsed.path))
    if parsed.scheme in {"http", "https"}:
        return url
    raise SystemExit(f"the sinks part's ClickHouse loop needs an HTTP ClickHouse, not {url!r}")


def _datetime64(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{seconds}.{fraction:06d}"


def json_row(record: dict[str, Any]) -> dict[str, Any]:
    """A processed event as a JSONEachRow row of ``events``: the column names, times as ``seconds.micros``
    text (JSON numbers are read as whole seconds)."""
    row = dict(record)
    for name in ("timestamp", "created_at"):
        row[name] = _datetime64(record[name])
    if record["person_created_at"] is not None:
        row["person_created_at"] = _datetime64(record["person_created_at"])
    for i in range(5):
        row[f"$group_{i}"] = row.pop(f"group_{i}")
    return row


class ClickHouseDestination:
    """A table like ``events`` (``CREATE TABLE … AS events``) in the stack's ClickHouse; the plain loop is one
    ``INSERT … FORMAT JSONEachRow`` per batch through httpx, the sink's HTTP client, to the same address."""

    sink_type = "clickhouse"

    def __init__(self, endpoints: Endpoints, table: str) -> None:
        self.table = table
        self._http = httpx.Client(base_url=http_clickhouse(endpoints.clickhouse), timeout=120)
        self._query(f"CREATE TABLE {table} AS events")

    def _query(self, sql: str, body: bytes = b"") -> bytes:
        response = self._http.post("/", params={"query": sql}, content=body)
        if response.status_code != 200:
            raise AssertionError(f"ClickHouse answered {response.status_code} to {sql[:80]}: {response.text[:500]}")
        return response.content

    def sink_config(self) -> dict[str, Any]:
        return {"records": "events", "table": self.table}

    def loop(self, batches: Sequence[Sequence[bytes]]) -> None:
        for values in batches:
            body = b"\n".join(orjson.dumps(json_row(r)) for r in _records(values))
            self._query(f"INSERT INTO {self.table} FORMAT JSONEachRow", body)

    def read_back(self) -> list[str]:
        return self._query(f"SELECT toString(uuid) FROM {self.table} FORMAT TSV").decode().split()  # noqa: S608

    def remove(self) -> None:
        self._query(f"DROP TABLE IF EXISTS {self.table}")
        self._http.close()


WEBHOOK_SECRET_ENV = "HEADWATER_BENCH_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret
WEBHOOK_BATCH = 500  # records per request, the sink's default


class WebhookDestination:
    """A receiver on 127.0.0.1 in this process (``tests.support.receiver``: it checks every signature and
    parses every body); the plain loop POSTs the same records, 500 a request, signed, with httpx, in the
    sink's JSON (``properties`` as JSON, not text), so that both send the same bytes but for the envelope."""

    sink_type = "webhook"

    def __init__(self) -> None:
        self.receiver = Receiver(b"bench-secret")
        self.receiver.up()
        os.environ[WEBHOOK_SECRET_ENV] = self.receiver.secret.decode()

    def sink_config(self) -> dict[str, Any]:
        return {"url": self.receiver.url, "secret_env": WEBHOOK_SECRET_ENV, "max_batch_records": WEBHOOK_BATCH}

    def loop(self, batches: Sequence[Sequence[bytes]]) -> None:
        with httpx.Client(timeout=60) as client:
            for values in batches:
                records = _records(values)
                for at in range(0, len(records), WEBHOOK_BATCH):
                    body = orjson.dumps({"records": [as_json(r) for r in records[at:at + WEBHOOK_BATCH]]})
                    response = client.post(self.receiver.url, content=body, headers={
                        "Content-Type": "application/json", HEADER: sign(self.receiver.secret, body)})
                    response.raise_for_status()

    def read_back(self) -> list[str]:
        assert self.receiver.bad_signatures == 0, f"{self.receiver.bad_signatures} bad signatures"
        return self.receiver.uuids()

    def remove(self) -> None:
        self.receiver.down()


class KafkaDestination:
    """A fresh topic in the stack's Kafka (4 partitions); the plain loop produces each record as JSON, keyed by
    its uuid, with confluent-kafka (acks=all, lz4: the sink's settings) and flushes once per batch."""

    sink_type = "kafka"
    PARTITIONS = 4

    def __init__(self, endpoints: Endpoints, topic: str) -> None:
        self.bootstrap = endpoints.kafka
        self.topic = topic
        create_topic(self.bootstrap, topic, self.PARTITIONS)

    def sink_config(self) -> dict[str, Any]:
        return {"topic": self.topic, "format": "json"}

    def loop(self, batches: Sequence[Sequence[bytes]]) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                             "compression.type": "lz4", "linger.ms": 5, "log_level": 0})
        for values in batches:
            for record in _records(values):
                while True:
                    try:
                        producer.produce(self.topic, value=orjson.dumps(record), key=str(record["uuid"]).encode())
                        break
                    except BufferError:  # the local queue is full: serve the delivery reports, then again
                        producer.poll(0.1)
            if producer.flush(60) != 0:
                raise AssertionError("Kafka did not acknowledge a batch of the plain loop")

    def read_back(self) -> list[str]:
        return [str(orjson.loads(m.value() or b"{}")["uuid"])
                for m in kafka_messages(self.bootstrap, self.topic, self.PARTITIONS, timeout=120)]

    def remove(self) -> None:
        delete_topics(self.bootstrap, [self.topic])


def _files(format_: str) -> Callable[[Context, str], Destination]:
    return lambda ctx, name: FilesDestination(ctx.run_dir / "sinks" / name, format_)


CASES: dict[str, SinkCase] = {
    "files_jsonl": SinkCase(
        "files · jsonl (gzip level 6), a file per source partition and hour, written atomically (fsync, rename)",
        "decode, orjson each record, gzip level 6, write_bytes: a file per batch", _files("jsonl")),
    "files_parquet": SinkCase(
        "files · parquet (zstd), a file per source partition and hour, written atomically (fsync, rename)",
        "decode, pyarrow Table.from_pylist + write_table (zstd): a file per batch", _files("parquet")),
    "clickhouse": SinkCase(
        "clickhouse · events: the envelopes' Avro records in one INSERT … FORMAT Avro per batch",
        "decode, a JSONEachRow row per record (column names, times as text), one httpx INSERT per batch",
        lambda ctx, name: ClickHouseDestination(ctx.endpoints, f"bench_{name}"), clickhouse=True),
    "webhook": SinkCase(
        "webhook · signed JSON batches of 500 records (properties as JSON), one request at a time",
        "decode, orjson a body of 500 records (properties as JSON), HMAC-SHA256, one httpx POST at a time",
        lambda ctx, name:
        WebhookDestination()),
    "kafka": SinkCase(
        "kafka · JSON, one message per record keyed by uuid (acks=all, lz4), one wait for the acks per batch",
        "decode, orjson each record, confluent-kafka produce keyed by uuid, flush per batch",
        lambda ctx, name: KafkaDestination(ctx.endpoints, f"bench_{name}")),
}


# -- one run --------------------------------------------------------------------------------------------------


class ToyBatch:
    """What the sink agent needs of a batch (``sinks.base.Batch``): the flush it registers, its dead letters."""

    def __init__(self) -> None:
        self.flushes: list[Callable[[], Awaitable[None]]] = []
        self.dead_letters = 0

    def on_flush(self, flush: Callable[[], Awaitable[None]]) -> None:
        self.flushes.append(flush)

    async def dead_letter(self, value: bytes, key: bytes | None, *, reason: str, stage: str, error: str,
                          source_topic: str) -> None:
        self.dead_letters += 1


@dataclass
class Run:
    """One side of one case in one round."""

    side: str  # "sink" or "loop"
    round: int
    records: int
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process (every thread)
    clickhouse_cpu_s: float = 0.0  # the ClickHouse owner's, over the same window
    foreign_percent: float = 0.0
    dead_letters: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_us_per_record(self) -> float:
        return 1e6 * self.cpu_s / self.records if self.records else 0.0

    @property
    def valid(self) -> bool:
        return not self.problems


async def drive_sink(destination: Destination, batches: Sequence[Sequence[Message]], endpoints: Endpoints,
                     clock: Callable[[], None]) -> int:
    """The sink fed as ``streams.app`` feeds it; ``clock()`` is called when the first batch starts. Dead letters."""
    sink = resolve_sink(destination.sink_type).build(f"bench_{destination.sink_type}", destination.sink_config(),
                                                     endpoints)
    agent = SinkAgent(sink, SOURCE_TOPIC)
    await agent.start()
    dead = 0
    clock()
    try:
        for messages in batches:
            batch = ToyBatch()
            await agent.handle([SourceEnvelope(m.value, m.key, m.count, m.position) for m in messages], batch)
            for flush in batch.flushes:
                await flush()
            dead += batch.dead_letters
    finally:
        await agent.close()
    return dead


def measure(ctx: Context, case: SinkCase, side: str, round_: int, batches: Sequence[Sequence[Message]],
            sent: Sequence[str], name: str) -> Run:
    """One run into a fresh destination, read back and removed after the clock stopped."""
    run = Run(side, round_, len(sent))
    destination = case.open(ctx, name)
    try:
        if case.clickhouse:
            settle(ctx.service_pids.get("clickhouse"))
        gc.collect()
        started: dict[str, Any] = {}

        def clock() -> None:
            started.update(wall=time.perf_counter(), cpu=time.process_time(), services=_services(ctx.service_pids),
                           sampler=CpuSampler({"bench": os.getpid(), **ctx.service_pids}))

        if side == "sink":
            run.dead_letters = uvloop.run(drive_sink(destination, batches, ctx.endpoints, clock))
        else:
            values = [[m.value for m in messages] for messages in batches]
            clock()
            destination.loop(values)
        run.wall_s = time.perf_counter() - started["wall"]
        run.cpu_s = time.process_time() - started["cpu"]
        services = _services(ctx.service_pids)
        spent = {k: v - started["services"].get(k, 0.0) for k, v in services.items()}
        run.clickhouse_cpu_s = spent.get("clickhouse", 0.0)
        run.foreign_percent = round(_foreign_percent(started["sampler"].stop(), spent), 1)
        if run.dead_letters:
            run.problems.append(f"{run.dead_letters} dead letters")
        try:
            found = destination.read_back()
        except AssertionError as exc:
            run.problems.append(str(exc))
        else:
            if len(found) != len(sent) or set(found) != set(sent):
                run.problems.append(f"read back {len(found):,} records ({len(set(found)):,} uuids), "
                                    f"not the {len(sent):,} sent once each")
    finally:
        destination.remove()
    return run


# -- the part -------------------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    name: str
    sink: str
    loop: str
    runs: list[Run] = field(default_factory=list)

    def side(self, side: str) -> list[Run]:
        return [r for r in self.runs if r.side == side]

    def median_rate(self, side: str) -> float | None:
        runs = self.side(side)
        return statistics.median(r.records_per_s for r in runs) if runs else None

    def median_cpu_us(self, side: str) -> float | None:
        runs = self.side(side)
        return statistics.median(r.cpu_us_per_record for r in runs) if runs else None

    def median_clickhouse_us(self, side: str) -> float | None:
        runs = self.side(side)
        return statistics.median(1e6 * r.clickhouse_cpu_s / r.records for r in runs) if runs else None

    @property
    def valid(self) -> bool:
        return bool(self.runs) and all(r.valid for r in self.runs)

    @property
    def ratio(self) -> float | None:
        """Median sink records/s ÷ median loop records/s."""
        sink, loop = self.median_rate("sink"), self.median_rate("loop")
        return sink / loop if sink and loop and self.valid else None

    def round_ratios(self) -> list[float]:
        loops = {r.round: r for r in self.side("loop")}
        return [r.records_per_s / loops[r.round].records_per_s for r in self.side("sink")
                if r.round in loops and loops[r.round].records_per_s]


@dataclass
class SinksPart:
    records: int
    rounds: int
    envelopes: int = 0
    batches: int = 0
    batch_events: int = 0
    build_s: float = 0.0
    cases: dict[str, CaseResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems and bool(self.cases) and all(c.valid for c in self.cases.values())


def interleaved(names: Sequence[str], rounds: int) -> Iterator[tuple[int, str, str]]:
    """(round, case, side) in the order a run takes them: the sink first in even rounds, the loop in odd ones."""
    for round_ in range(rounds):
        for name in names:
            sides = ("sink", "loop") if round_ % 2 == 0 else ("loop", "sink")
            for side in sides:
                yield round_, name, side


def run_sinks(ctx: Context, records: int, rounds: int, names: Sequence[str]) -> SinksPart:
    """See the module docstring."""
    part = SinksPart(records, rounds)
    began = time.monotonic()
    sent = processed_records(records)
    partitions = load_topology(DEFAULT_TOPOLOGY).topics[SOURCE_TOPIC].partitions
    messages = processed_messages(sent, partitions)
    part.batch_events = BatchSpec().max_events
    batches = sink_batches(messages, part.batch_events)
    part.envelopes, part.batches = len(messages), len(batches)
    uuids = [r["uuid"] for r in sent]
    del sent
    part.build_s = round(time.monotonic() - began, 1)
    step(f"sinks: {records:,} processed events in {part.envelopes:,} envelopes over {partitions} partitions, "
         f"{part.batches} batches of ≤ {part.batch_events:,} events ({part.build_s:.1f}s to build); "
         f"{rounds} rounds of {', '.join(names)}")
    part.cases = {name: CaseResult(name, CASES[name].sink, CASES[name].loop) for name in names}
    before = gc.get_threshold()
    tune_gc(WORKER_GC_THRESHOLDS)  # the worker's collector, for both sides
    try:
        for round_, name, side in interleaved(names, rounds):
            label = f"{name}_{side}_{round_}_{uuid.uuid4().hex[:6]}"
            run = measure(ctx, CASES[name], side, round_, batches, uuids, label)
            part.cases[name].runs.append(run)
            step(f"sinks · round {round_ + 1} · {name} · {side}: {run.records_per_s:,.0f} records/s, "
                 f"{run.cpu_us_per_record:.1f} CPU µs/record, foreign {run.foreign_percent:.0f}%"
                 + (f" [red]INVALID: {'; '.join(run.problems)}[/]" if run.problems else ""))
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    return part


def part_json(part: SinksPart) -> dict[str, Any]:
    def rounded(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "records": part.records, "rounds": part.rounds, "envelopes": part.envelopes, "batches": part.batches,
        "batch_events": part.batch_events, "build_s": part.build_s, "ratio_target": RATIO_TARGET,
        "cases": {name: {
            "sink": c.sink, "loop": c.loop, "valid": c.valid,
            "sink_records_per_s": rounded(c.median_rate("sink")), "loop_records_per_s": rounded(c.median_rate("loop")),
            "ratio": rounded(c.ratio, 3), "round_ratios": [round(r, 3) for r in c.round_ratios()],
            "met": None if c.ratio is None else c.ratio >= RATIO_TARGET,
            "runs": [{**asdict(r), "records_per_s": round(r.records_per_s, 1),
                      "cpu_us_per_record": round(r.cpu_us_per_record, 2), "valid": r.valid} for r in c.runs],
        } for name, c in part.cases.items()},
        "valid": part.valid, "problems": part.problems,
    }
