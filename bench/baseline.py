"""The ceiling for ``make bench``: a bare Starlette app served exactly like the gateway.

Its POST handler reads the body, parses it with orjson and answers ``{"status": "Ok"}``:
everything an HTTP JSON endpoint cannot avoid in Python, nothing Headwater adds (no decoding
rules, no token lookup, no Avro, no Kafka). Served by uvicorn with the gateway's options
(``headwater gateway``: uvloop, httptools, one process, access log off, log level warning).

    .venv/bin/python bench/baseline.py --port 8100

The options add, one at a time, pieces of the gateway's request path taken unchanged from
``capture_gateway`` (``make bench`` runs them with ``--ladder``), to tell what costs what:

    --read-body       the body read by the gateway's ``capture_gateway.bodies.BodyReader`` (size limit, deadline)
    --kafka B --topic T   also write the raw body as one message with the gateway's ``KafkaProducer``
                      (acks=all, idempotent, lz4) and answer only once Kafka acknowledged it
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PATHS = ("/e", "/e/", "/batch", "/batch/")


async def liveness(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(read_body: bool = False, kafka: str | None = None, topic: str | None = None) -> Starlette:
    producer = None
    bodies = None

    async def capture(request: Request) -> Response:
        if bodies is not None:
            body = await bodies.read(request.receive, 20 * 1024 * 1024, request.headers.get("content-length"))
        else:
            body = await request.body()
        payload = orjson.loads(body)
        if not isinstance(payload, dict | list):
            return JSONResponse({"status": 400}, status_code=400)
        if producer is not None and topic is not None:
            from capture_gateway.producer import OutgoingMessage

            acknowledged: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            producer.produce(OutgoingMessage(topic, None, None, body, [("count", b"1")]), acknowledged.set_result)
            if await acknowledged is not None:
                return JSONResponse({"status": 503}, status_code=503)
        return JSONResponse({"status": "Ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal producer, bodies
        if read_body:
            from capture_gateway.bodies import BodyReader

            bodies = BodyReader(10.0)
        if kafka:
            from capture_gateway.producer import KafkaProducer

            producer = KafkaProducer(kafka, 10.0)
        try:
            yield
        finally:
            if producer is not None:
                producer.close()

    routes = [*(Route(p, capture, methods=["POST"]) for p in PATHS), Route("/_liveness", liveness)]
    return Starlette(routes=routes, lifespan=lifespan)


app = create_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--read-body", action="store_true")
    parser.add_argument("--kafka", help="bootstrap servers")
    parser.add_argument("--topic")
    args = parser.parse_args()
    application = create_app(args.read_body, args.kafka, args.topic)
    uvicorn.run(application, host=args.host, port=args.port, log_level="warning", loop="uvloop", http="httptools",
                access_log=False)


if __name__ == "__main__":
    main()
