"""The owner of an embedded chDB data path, serving a subset of ClickHouse's HTTP interface.

chDB lets one process open a data path, so this process holds it and every other process
(worker, ``headwater migrate``, ``headwater query``) sends SQL here:

- ``GET /ping`` → ``Ok.``
- ``POST /?query=…&default_format=…`` with a body: the query is the ``query`` parameter
  followed by the body (so ``INSERT … FORMAT JSONEachRow`` takes its rows from the body),
  or the body alone. Errors answer 500 with ClickHouse's message, as the real server does.

It writes ``<path>.owner.json`` (pid and port) so clients given ``chdb:///path`` find it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
from pathlib import Path

import chdb
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


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

    async def query(request: Request) -> Response:
        body = (await request.body()).decode()
        head = request.query_params.get("query")
        sql = f"{head}\n{body}" if head else body
        fmt = request.query_params.get("default_format", "TabSeparated")
        try:
            out = await asyncio.to_thread(run, sql, fmt)
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
