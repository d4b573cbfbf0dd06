"""The end-to-end canary: a heartbeat event per configured project through the real gateway, timed until
ClickHouse has it. Its age then is the pipeline's freshness, measured the way PostHog measures its
"95% of events queryable within 30 s".

Every ``HEADWATER_CANARY_SECONDS`` the worker POSTs one ``$headwater_canary`` event per token of
``HEADWATER_CANARY_TOKENS`` to the gateway's ``/batch/`` (``HEADWATER_CANARY_GATEWAY``, default
the local gateway), with ``$process_person_profile: false`` (no person is made for it) and
``$lib: headwater-canary``; then it asks ClickHouse once a second, for every canary still on
its way, whether its uuid is in the events table. Leave canary events out of a query with
``event != '$headwater_canary'``. One not there after ``LOST_SECONDS`` counts as lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson

from headwater.runtime.topology import Topology
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.config import ClickHouseConfig
from sinks.errors import SinkError
from streams import telemetry

log = logging.getLogger("headwater.canary")

EVENT = "$headwater_canary"
DISTINCT_ID = "headwater-canary"
POLL_SECONDS = 1.0
LOST_SECONDS = 300.0


@dataclass(frozen=True)
class CanaryOptions:
    """What the worker's canary sends, where to and how often (``HEADWATER_CANARY_*``)."""

    tokens: tuple[str, ...]
    every_seconds: float
    gateway_url: str


@dataclass
class InFlight:
    token: str
    sent: float  # wall time, seconds


def events_table(topology: Topology) -> str | None:
    """The table the topology's ClickHouse sink of processed events writes (None: no such sink)."""
    for sink in topology.sinks:
        if sink.type == "clickhouse" and sink.source == topology.pipeline.output:
            config = ClickHouseConfig.model_validate(sink.config)
            if config.records == "events":
                return config.target_table
    return None


class Canary:
    """Sends and times the heartbeats; ``run`` until cancelled."""

    def __init__(self, options: CanaryOptions, clickhouse: ClickHouseClient, table: str) -> None:
        self._options = options
        self._clickhouse = clickhouse
        self._table = table
        self._flying: dict[str, InFlight] = {}

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            next_send = time.monotonic()
            while True:
                if time.monotonic() >= next_send:
                    await self._send(http)
                    next_send += self._options.every_seconds
                await self._look()
                await asyncio.sleep(POLL_SECONDS)

    async def _send(self, http: httpx.AsyncClient) -> None:
        for token in self._options.tokens:
            event_uuid = str(uuid.uuid4())
            sent = time.time()
            body = {"api_key": token, "batch": [{
                "event": EVENT, "distinct_id": DISTINCT_ID, "uuid": event_uuid,
                "timestamp": datetime.fromtimestamp(sent, tz=UTC).isoformat(),
                "properties": {"$lib": "headwater-canary", "$process_person_profile": False}}]}
            try:
                response = await http.post(f"{self._options.gateway_url}/batch/", content=orjson.dumps(body),
                                           headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                telemetry.CANARY_FAILED.inc()
                log.warning("canary: the gateway at %s does not answer: %s", self._options.gateway_url, exc)
                continue
            if response.status_code != 200:
                telemetry.CANARY_FAILED.inc()
                log.warning("canary: the gateway answered %s: %s", response.status_code, response.text[:200])
                continue
            telemetry.CANARY_SENT.inc()
            self._flying[event_uuid] = InFlight(token, sent)

    async def _look(self) -> None:
        if not self._flying:
            return
        wanted = ", ".join(f"'{u}'" for u in self._flying)
        try:
            found = await self._clickhouse.select(
                f"SELECT toString(uuid) FROM {self._table} WHERE event = '{EVENT}' AND uuid IN ({wanted})")  # noqa: S608 - uuids we made
        except SinkError as exc:
            log.warning("canary: ClickHouse does not answer: %s", exc)
            return
        now = time.time()
        for (landed,) in found.rows:
            flight = self._flying.pop(str(landed), None)
            if flight is not None:
                age = now - flight.sent
                telemetry.CANARY_SECONDS.observe(age)
                telemetry.CANARY_FRESHNESS.set(age)
        for event_uuid, flight in list(self._flying.items()):
            if now - flight.sent > LOST_SECONDS:
                del self._flying[event_uuid]
                telemetry.CANARY_LOST.inc()
                log.error("canary: the heartbeat sent %.0fs ago never reached %s", now - flight.sent, self._table)
