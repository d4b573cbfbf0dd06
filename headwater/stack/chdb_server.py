"""The owner of an embedded chDB data path, serving a subset of ClickHouse's HTTP interface.

chDB lets one process open a data path, so this process holds it and every other process
(worker, ``headwater migrate``, ``headwater query``) sends SQL here:

- ``GET /ping`` → ``Ok.``
- ``POST /?query=…&default_format=…`` with a body: the query is the ``query`` parameter
  followed by the body (so ``INSERT … FORMAT JSONEachRow`` takes its rows from the body),
  or the body alone. Errors answer 500 with ClickHouse's message, as the real server does.
- ``POST /?query=INSERT … SELECT … FROM input('<structure>') FORMAT Avro`` with an Avro
  container as the body, as a server streams it: chDB has no request body to read, so the
  body goes to a temporary file and ``input(…)`` becomes ``file(<it>, 'Avro', …)``.

It writes ``<path>.owner.json`` (pid and port) so clients given ``chdb:///path`` find it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
import threading
from pathlib import Path

import chdb
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

AVRO_INPUT = re.compile(r"FROM input\('(?P<structure>[^']*)'\)\s+FORMAT Avro\s*$")
SPOOL = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - NamedTemporaryFile: random, O_EXCL
"""Where Avro bodies wait for chDB to read them: memory when the machine has it."""


def owner_file(path: Path) -> Path:
    return path.with_name(path.name + ".owner.json")


def create_app(path: Path) -> Starlette:
    path.mkdir(parents=True, exist_ok=True)
    conn = chdb.connect(str(path))  # type: ignore[no-untyped-call]
    lock = threading.Lock()

    def run(sql: str, fmt: str) -> bytes:
        with lock:
            result = conn.query(sql, fmt)
            return bytes(result.bytes()) if result is not None else b""

    async def ping(_: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    def run_with_input(head: str, found: re.Match[str], body: bytes, fmt: str) -> bytes:
        with tempfile.NamedTemporaryFile(dir=SPOOL, suffix=".avro") as spool:
            spool.write(body)
            spool.flush()
            sql = head[:found.start()] + f"FROM file('{spool.name}', 'Avro', '{found['structure']}')"
            return run(sql, fmt)

    async def query(request: Request) -> Response:
        raw = await request.body()
        head = request.query_params.get("query")
        fmt = request.query_params.get("default_format", "TabSeparated")
        found = AVRO_INPUT.search(head) if head else None
        try:
            if head and found:
                out = await asyncio.to_thread(run_with_input, head, found, raw, fmt)
            else:
                body = raw.decode()
                out = await asyncio.to_thread(run, f"{head}\n{body}" if head else body, fmt)
        except RuntimeError as exc:  # chDB raises ChdbError(RuntimeError) with the server's text
            return PlainTextResponse(str(exc), status_code=500)
        return Response(out, media_type="text/plain; charset=utf-8")

    return Starlette(routes=[Route("/ping", ping), Route("/", query, methods=["GET", "POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    path: Path = args.path.resolve()
    app = create_app(path)
    owner_file(path).write_text(json.dumps({"pid": os.getpid(), "port": args.port}))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
