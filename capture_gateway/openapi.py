"""The gateway's OpenAPI 3.0 document, served at ``/openapi.json``."""

from __future__ import annotations

from functools import cache
from typing import Any

from capture_gateway.capture import PATHS

_EVENT = {
    "type": "object",
    "required": ["event"],
    "properties": {
        "event": {"type": "string", "minLength": 1},
        "distinct_id": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        "uuid": {"type": "string", "format": "uuid"},
        "timestamp": {"type": "string"},
        "offset": {"type": "integer"},
        "properties": {"type": "object"},
        "$set": {"type": "object"},
        "$set_once": {"type": "object"},
        "token": {"type": "string"},
    },
}
_BATCH = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "api_key": {"type": "string"},
        "token": {"type": "string"},
        "batch": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
        "sent_at": {"type": "string"},
        "historical_migration": {"type": "boolean"},
    },
}
_ERROR = {
    "type": "object",
    "required": ["status", "code", "error"],
    "properties": {"status": {"type": "integer"}, "code": {"type": "string"}, "error": {"type": "string"}},
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_ERRORS = {
    "400": _error("Malformed body or event"),
    "401": _error("Missing, malformed or unknown project token"),
    "408": _error("The body arrived too slowly"),
    "413": _error("Body too large (also after decompression)"),
    "429": _error("Project over its rate limit"),
    "503": _error("Kafka or Postgres unavailable: nothing was written, retry"),
}


def _capture_operation(path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"capture_{method}_{path.strip('/').replace('/', '_')}",
        "summary": "PostHog v0 capture: an event, an array of events or a batch object",
        "parameters": [
            {"name": "compression", "in": "query", "schema": {"type": "string",
             "enum": ["gzip", "gzip-js", "lz64", "lz-string", "base64", "b64"]}},
            {"name": "_", "in": "query", "schema": {"type": "integer"}, "description": "sent_at in ms (legacy)"},
            {"name": "beacon", "in": "query", "schema": {"type": "string", "enum": ["1"]}},
        ],
        "responses": {
            "200": {"description": "Every event was written to Kafka",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            "204": {"description": "Written (sendBeacon requests, beacon=1)"},
            **_ERRORS,
        },
    }
    if method == "post":
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/Batch"},
            {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            {"$ref": "#/components/schemas/Event"},
        ]}}}}
    else:
        operation["parameters"].append({"name": "data", "in": "query", "required": True,
                                        "schema": {"type": "string"}, "description": "base64 JSON payload"})
    return operation


@cache
def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path in PATHS:
        for variant in (path, path + "/"):
            paths[variant] = {"post": _capture_operation(variant, "post"), "get": _capture_operation(variant, "get")}
    paths["/i/v1/analytics/events"] = {"post": {
        "operationId": "capture_v1",
        "summary": "PostHog v1 capture: per-event results",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["batch"],
            "properties": {"created_at": {"type": "string"}, "historical_migration": {"type": "boolean"},
                           "batch": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}}}}},
        "responses": {"200": {"description": "A result per event uuid", "content": {"application/json": {
            "schema": {"type": "object", "required": ["results"], "properties": {"results": {"type": "object"}}}}}},
            **_ERRORS, "415": _error("Unsupported Content-Encoding")},
    }}
    for path in ("/flags", "/flags/", "/decide", "/decide/"):
        paths[path] = {"post": {"operationId": f"flags_{path.strip('/')}_{len(path)}", "summary": "No feature flags",
                                "responses": {"200": {"description": "Empty flags"}}}}
    paths["/array/{token}/config.js"] = {"get": {
        "operationId": "remote_config_js", "summary": "posthog-js remote config script",
        "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "JavaScript"}}}}
    for path, op in (("/_liveness", "liveness"), ("/_readiness", "readiness"), ("/metrics", "metrics")):
        paths[path] = {"get": {"operationId": op, "responses": {"200": {"description": "OK"},
                                                                 "503": {"description": "Not ready"}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Headwater capture gateway", "version": "1",
                 "description": "PostHog's capture protocol; see README 'Send events'."},
        "paths": paths,
        "components": {
            "schemas": {"Event": _EVENT, "Batch": _BATCH, "Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
