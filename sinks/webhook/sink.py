"""The webhook sink: each flush POSTs its records as signed JSON batches; a destination that stays down is paused.

A request's body::

    {"destination": "<sink name>", "batch": "<id>", "window": null | {"name", "start", "end"},
     "records": [<record>, ...]}

Records are the source topic's records as they are, with their JSON-text fields (``properties``,
``person_properties``, a window result's ``key`` and ``values``) as JSON objects; times are
microseconds since the epoch. A window's results go in requests of their own (one window each),
events in requests of up to ``max_batch_records``. ``batch`` (also ``X-Headwater-Batch``) names
the request by the source position of its first envelope, so a redelivered batch carries the same
id: delivery is at least once, and a receiver deduplicates by that id or by each record's uuid.

Answers: 2xx delivered; 400 and 422 refused (the batch is halved until the refused records are
found, which are dead-lettered alone, ``sink_rejected``); 413 halves the batch; anything else
(5xx, 429, 401, a timeout, a refused connection) means the destination is failing: the request
is retried with exponential backoff and jitter (``Retry-After`` is honoured), the partition
waiting. A destination failing for ``pause_after_seconds`` without a success is **paused**: its
batches are dead-lettered whole (reason ``destination_paused``, with the last error) so the rest
of the pipeline moves on, one batch per ``probe_seconds`` is tried once, and the first that gets
through resumes it. ``headwater dlq replay`` delivers the dead-lettered batches to this sink once
the destination is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from headwater import __version__
from schemas.errors import SchemaError
from sinks import telemetry
from sinks.base import FlushResult, Health, Record, Rejected, SourceEnvelope, Unwritten
from sinks.filter import EventFilter
from sinks.retry import Backoff
from sinks.webhook.config import WebhookConfig
from sinks.webhook.signing import HEADER, sign

log = logging.getLogger("headwater.sinks.webhook")

JSON_TEXT_FIELDS = frozenset({"properties", "person_properties", "group_properties", "key", "values"})
"""Record fields that hold JSON text: sent as JSON, verbatim (``orjson.Fragment``: nothing re-parsed)."""

REFUSED = frozenset({400, 422})
TOO_LARGE = 413
ERROR_TEXT = 300  # characters of an error answer kept for logs and dead letters

Outcome = Literal["delivered", "refused", "too_large", "failed"]


@dataclass(frozen=True)
class Attempt:
    """What one request got."""

    outcome: Outcome
    detail: str
    retry_after: float | None = None


@dataclass
class Request:
    """One batch to send: its records and the envelopes (by index in the flush) they came from."""

    id: str
    window: dict[str, Any] | None
    records: list[Record]
    sources: list[int]  # for each record, its envelope's index


@dataclass
class Sent:
    """What sending a ``Request`` (and its halves) came to."""

    delivered: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    paused: set[int] = field(default_factory=set)  # envelopes not delivered because the destination is paused


class WebhookSink:
    """A ``sinks.base.Sink`` POSTing signed JSON batches; see the module docstring."""

    def __init__(self, name: str, config: WebhookConfig, secret: bytes,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self._config = config
        self._secret = secret
        self._transport = transport  # tests hand in a transport; the worker uses httpx's own
        self._client: httpx.AsyncClient | None = None
        self._pending: list[SourceEnvelope] = []
        # None: the filter takes every record, so it is not asked per record
        self._takes = None if config.filter == EventFilter() else config.filter.takes
        self._failing_since: float | None = None
        self._paused = False
        self._next_probe = 0.0
        self._last_error = ""
        self._retries = telemetry.RETRIES.labels(name)
        self._requests = {outcome: telemetry.WEBHOOK_REQUESTS.labels(name, outcome)
                          for outcome in ("delivered", "refused", "too_large", "failed")}
        self._seconds = telemetry.WEBHOOK_REQUEST_SECONDS.labels(name)
        self._paused_gauge = telemetry.WEBHOOK_PAUSED.labels(name)
        self._paused_envelopes = telemetry.WEBHOOK_PAUSED_ENVELOPES.labels(name)

    # -- the contract ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._http()

    async def healthcheck(self) -> Health:
        if self._paused:
            return Health(False, f"{self._config.url} paused since it kept failing: {self._last_error}")
        if self._failing_since is not None:
            return Health(False, f"{self._config.url} failing for {time.monotonic() - self._failing_since:.0f}s: "
                                 f"{self._last_error}")
        return Health(True, f"{self._config.url} took the last batch" if self._last_error == "" else
                      f"{self._config.url} recovered")

    def write(self, envelopes: Sequence[SourceEnvelope]) -> None:
        self._pending.extend(envelopes)

    async def flush(self) -> FlushResult:
        envelopes, self._pending = self._pending, []
        requests, unwritten = self._requests_of(envelopes)
        written = 0
        rejected: list[Rejected] = []
        paused: set[int] = set()
        for request in requests:
            sent = await self._send(request)
            written += sent.delivered
            rejected += sent.rejected
            paused |= sent.paused
        if paused:
            self._paused_envelopes.inc(len(paused))
            unwritten += [Unwritten(envelopes[i], f"{self._config.url}: {self._last_error}", "destination_paused")
                          for i in sorted(paused)]
        return FlushResult(written=written, rejected=rejected, unwritten=unwritten)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- batching -------------------------------------------------------------------------------

    def _requests_of(self, envelopes: Sequence[SourceEnvelope]) -> tuple[list[Request], list[Unwritten]]:
        """The flush's records, filtered, as requests: events in order, each window's results apart."""
        unwritten: list[Unwritten] = []
        events = Request("", None, [], [])
        windows: dict[tuple[str, int, int], Request] = {}
        first_id = ""
        for index, envelope in enumerate(envelopes):
            try:
                records = envelope.records()
            except SchemaError as exc:
                unwritten.append(Unwritten(envelope, str(exc)))
                continue
            if not first_id:
                position = envelope.position
                first_id = (f"{position.topic}-p{position.partition}-o{position.offset}" if position is not None
                            else f"unplaced-{time.time_ns()}")
            takes = self._takes
            for record in records:
                if takes is not None and not takes(record):
                    continue
                if "window" in record and "start" in record and "end" in record:
                    slot = (str(record["window"]), int(record["start"]), int(record["end"]))
                    target = windows.get(slot)
                    if target is None:
                        target = windows[slot] = Request(
                            "", {"name": slot[0], "start": slot[1], "end": slot[2]}, [], [])
                else:
                    target = events
                target.records.append(record)
                target.sources.append(index)
        limit = self._config.max_batch_records
        requests: list[Request] = []
        for whole in [events, *windows.values()]:
            for at in range(0, len(whole.records), limit):
                requests.append(Request(f"{first_id}-{len(requests)}", whole.window, whole.records[at:at + limit],
                                        whole.sources[at:at + limit]))
        return requests, unwritten

    def _body(self, request: Request) -> bytes:
        return orjson.dumps({"destination": self.name, "batch": request.id, "window": request.window,
                             "records": [as_json(r) for r in request.records]})

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, request: Request) -> Sent:
        """Deliver ``request``, halving it when the destination refuses part of it or finds it too large."""
        attempt = await self._until_settled(request)
        if attempt is None:
            return Sent(paused=set(request.sources))
        if attempt.outcome == "delivered":
            return Sent(delivered=len(request.records))
        if len(request.records) == 1:
            log.warning("%s: %s refused a record (%s): dead-lettered", self.name, self._config.url, attempt.detail)
            return Sent(rejected=[Rejected(request.records[0], f"{self._config.url}: {attempt.detail}")])
        middle = len(request.records) // 2
        total = Sent()
        for part, (records, sources) in enumerate([(request.records[:middle], request.sources[:middle]),
                                                   (request.records[middle:], request.sources[middle:])]):
            sent = await self._send(Request(f"{request.id}.{part}", request.window, records, sources))
            total.delivered += sent.delivered
            total.rejected += sent.rejected
            total.paused |= sent.paused
        return total

    async def _until_settled(self, request: Request) -> Attempt | None:
        """POST until the destination answers for this batch (delivered, refused, too large), retrying
        a failing destination with backoff; None once it is paused (see the module docstring)."""
        body = self._body(request)
        backoff = Backoff()
        while True:
            now = time.monotonic()
            if self._paused and now < self._next_probe:
                return None
            attempt = await self._post(request.id, body)
            if attempt.outcome != "failed":
                self._recovered()
                return attempt
            self._last_error = attempt.detail
            now = time.monotonic()
            if self._paused:  # a probe that failed: wait for the next one
                self._next_probe = now + self._config.probe_seconds
                return None
            if self._failing_since is None:
                self._failing_since = now
            failing_for = now - self._failing_since
            if failing_for >= self._config.pause_after_seconds:
                self._pause(failing_for)
                return None
            pause = backoff.delay() if attempt.retry_after is None else attempt.retry_after
            pause = min(pause, self._config.pause_after_seconds - failing_for)
            self._retries.inc()
            log.warning("%s: %s failed (%s); retrying in %.1fs", self.name, self._config.url, attempt.detail, pause)
            await asyncio.sleep(pause)

    async def _post(self, batch_id: str, body: bytes) -> Attempt:
        headers = {"Content-Type": "application/json", HEADER: sign(self._secret, body), "X-Headwater-Batch": batch_id}
        started = time.perf_counter()
        try:
            response = await self._http().post(self._config.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            attempt = Attempt("failed", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        else:
            attempt = _judged(response)
        self._seconds.observe(time.perf_counter() - started)
        self._requests[attempt.outcome].inc()
        return attempt

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._config.timeout_seconds, transport=self._transport, follow_redirects=False,
                headers={"User-Agent": f"headwater/{__version__}", **self._config.headers})
        return self._client

    # -- pausing --------------------------------------------------------------------------------

    def _pause(self, failing_for: float) -> None:
        self._paused = True
        self._next_probe = time.monotonic() + self._config.probe_seconds
        self._paused_gauge.set(1)
        log.error("%s: %s has failed for %.0fs (%s): paused; its batches go to the dead-letter topic until it "
                  "answers again (headwater dlq replay --filter stage=sink:%s delivers them then)",
                  self.name, self._config.url, failing_for, self._last_error, self.name)

    def _recovered(self) -> None:
        if self._paused:
            log.warning("%s: %s answers again: resumed", self.name, self._config.url)
        self._paused = False
        self._failing_since = None
        self._paused_gauge.set(0)


def _judged(response: httpx.Response) -> Attempt:
    status = response.status_code
    if 200 <= status < 300:
        return Attempt("delivered", f"HTTP {status}")
    detail = f"HTTP {status}: {response.text[:ERROR_TEXT]}".rstrip(": ")
    if status in REFUSED:
        return Attempt("refused", detail)
    if status == TOO_LARGE:
        return Attempt("too_large", detail)
    return Attempt("failed", detail, _retry_after(response.headers.get("Retry-After")))


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is rare for webhooks: backoff applies then)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def as_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with its JSON-text fields as JSON (a copy: the record may yet be dead-lettered as Avro)."""
    out = dict(record)
    for name in JSON_TEXT_FIELDS:
        value = out.get(name)
        if isinstance(value, str) and value[:1] in ("{", "["):
            out[name] = orjson.Fragment(value)
    return out
