"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from capture_gateway import telemetry
from capture_gateway.context import GatewayContext
from capture_gateway.openapi import openapi_document
from headwater.errors import Unavailable


async def liveness(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readiness(request: Request) -> Response:
    """Ready when Kafka answers now for the capture topic (asked afresh: a cached answer would
    say 200 while capture answers 503)."""
    gateway: GatewayContext = request.app.state.gateway
    try:
        await gateway.producer.partitions(gateway.topology.capture.topic, fresh=True)
    except Unavailable as exc:
        return JSONResponse({"status": "unavailable", "code": exc.code, "error": exc.message}, status_code=503)
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    gateway: GatewayContext = request.app.state.gateway
    telemetry.PRODUCER_QUEUE.set(gateway.producer.queue_length())
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def openapi(_: Request) -> Response:
    return JSONResponse(openapi_document())
