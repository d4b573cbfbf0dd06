"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that checks every signature.

It keeps each delivered request (body, headers) and answers as the test tells it: ``fail_next``
queues answers (503, 422, ...) for the next requests, ``down``/``up`` make it refuse connections
by closing its socket. A request whose signature does not verify is answered 401 and counted in
``bad_signatures``; the tests expect none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from sinks.webhook.signing import HEADER, verify


@dataclass
class Delivery:
    batch: str
    body: dict[str, Any]


@dataclass
class Receiver:
    secret: bytes
    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # the next requests' statuses
    refuse_uuids: set[str] = field(default_factory=set)  # a batch holding one of these is answered 422
    retry_after: str | None = None  # sent with every answer that is no 2xx
    arrivals: list[float] = field(default_factory=list)  # monotonic time of each request
    bad_signatures: int = 0
    requests: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self.answers += statuses

    def uuids(self) -> list[str]:
        """Every delivered record's uuid, with repeats."""
        with self._lock:
            return [str(r["uuid"]) for d in self.deliveries for r in d.body["records"] if "uuid" in r]

    def _handle(self, body: bytes, signature: str | None, batch: str) -> int:
        with self._lock:
            self.requests += 1
            self.arrivals.append(time.monotonic())
            if not verify(self.secret, body, signature):
                self.bad_signatures += 1
                return 401
            if self.answers:
                return self.answers.pop(0)
            decoded = orjson.loads(body)
            if any(str(r.get("uuid")) in self.refuse_uuids for r in decoded["records"]):
                return 422
            self.deliveries.append(Delivery(batch, decoded))
            return 200

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._handle(body, self.headers.get(HEADER), self.headers.get("X-Headwater-Batch", ""))
                self.send_response(status)
                if status >= 300 and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()

    def down(self) -> None:
        """Stop answering: connections are refused until ``up`` (on the same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def receiving(secret: bytes = b"test-secret") -> Iterator[Receiver]:
    receiver = Receiver(secret)
    receiver.up()
    try:
        yield receiver
    finally:
        receiver.down()
