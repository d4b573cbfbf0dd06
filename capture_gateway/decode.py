"""Request bodies → JSON: the body shapes and encodings the PostHog SDKs send (docs/sdks.md).

Order: payload from the ``data`` query parameter, else the body; a urlencoded form's ``data``
field; the compression hint (query ``compression``, form ``compression``, then
``Content-Encoding``): gzip/gzip-js (by its magic bytes, whatever the hint; a gzip hint on a
payload without them, as posthog-js 1.78 sends, is read as base64 or JSON), deflate, zstd
(also by magic bytes), lz64/lz-string; base64 when it decodes (twice on legacy paths). Decompressed size
is limited while inflating, so a gzip bomb costs at most ``limit`` bytes of memory.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
import zstandard

from capture_gateway.errors import BadRequest, PayloadTooLarge
from capture_gateway.lzstring import LZStringError, LZStringTooLarge, decompress_from_base64

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(slots=True)
class RawRequest:
    """What the decoder needs from an HTTP request."""

    body: bytes
    query: dict[str, str]
    content_type: str
    content_encoding: str


def inflate(data: bytes, limit: int, wbits: int = 16 + zlib.MAX_WBITS) -> bytes:
    """Decompress gzip (or zlib/deflate by ``wbits``), refusing output beyond ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid compressed data: {exc}", "invalid_compression") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed body is larger than {limit} bytes")
    if not inflater.eof:
        raise BadRequest("the compressed body is truncated", "invalid_compression")
    return out


def unlz64(data: bytes, limit: int) -> bytes:
    """lz-string's ``compressToBase64`` (old posthog-js), decoded within ``limit``."""
    try:
        text = decompress_from_base64(data.decode("ascii", errors="replace"), limit)
    except LZStringTooLarge as exc:
        raise PayloadTooLarge(f"the decompressed body is larger than {limit} bytes") from exc
    except LZStringError as exc:
        raise BadRequest(f"the body is not valid lz-string data: {exc}", "invalid_compression") from exc
    return text.encode("utf-8", errors="surrogatepass")


def unzstd(data: bytes, limit: int) -> bytes:
    """zstd (the v1 protocol's ``Content-Encoding: zstd``), decoded within ``limit``."""
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            out = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise BadRequest(f"the body is not valid zstd data: {exc}", "invalid_compression") from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"the decompressed body is larger than {limit} bytes")
    return out


def _maybe_base64(data: bytes) -> bytes:
    stripped = data.strip()
    if not stripped or stripped[:1] in (b"{", b"["):
        return data
    try:
        return base64.b64decode(stripped + b"=" * (-len(stripped) % 4), validate=False)
    except (binascii.Error, ValueError):
        return data


def _form(body: bytes) -> dict[str, str]:
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def decode_body(request: RawRequest, limit: int) -> Any:
    """The JSON value the request carries; raises ``BadRequest`` or ``PayloadTooLarge``."""
    hint = request.query.get("compression", "")
    if "data" in request.query:
        # the query parser turned a raw '+' of base64 into a space
        payload = request.query["data"].replace(" ", "+").encode()
    elif request.content_type.startswith("application/x-www-form-urlencoded") and (
        form := _form(request.body)
    ).get("data") is not None:
        # '+' in base64 may have become a space on the way through the form encoder
        payload = form["data"].replace(" ", "+").encode()
        hint = hint or form.get("compression", "")
    else:  # the body itself (also a form-typed body without a data field, as curl sends JSON)
        payload = request.body
    hint = (hint or request.content_encoding).lower()

    if hint in {"lz64", "lz-string"}:
        payload = unlz64(payload, limit)
    elif hint == "zstd" or payload[:4] == ZSTD_MAGIC:
        payload = unzstd(payload, limit)
    elif payload[:2] == GZIP_MAGIC or hint in {"gzip", "gzip-js"}:
        if payload[:2] != GZIP_MAGIC:
            payload = _maybe_base64(payload)
        # the hint is a hint: posthog-js 1.78 sends ?compression=gzip-js with an uncompressed
        # base64 form body, which PostHog's capture accepts; only gzip's magic bytes mean gzip
        if payload[:2] == GZIP_MAGIC:
            payload = inflate(payload, limit)
        elif payload[:1] not in (b"{", b"["):
            payload = _maybe_base64(payload)  # base64 twice, as legacy clients do
    elif hint == "deflate":
        payload = inflate(payload, limit, wbits=zlib.MAX_WBITS)
    elif hint in {"base64", "b64"} or payload[:1] not in (b"{", b"["):
        payload = _maybe_base64(payload)
        if payload[:2] == GZIP_MAGIC:
            payload = inflate(payload, limit)
        elif payload[:1] not in (b"{", b"["):
            payload = _maybe_base64(payload)  # legacy clients base64 twice
    if len(payload) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    if not payload.strip():
        raise BadRequest("the request has no body", "empty_payload")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise BadRequest(f"the body is not valid JSON: {exc}", "invalid_json") from exc
    # JSON.stringify emits lone UTF-16 surrogates (a string cut inside an emoji); orjson refuses
    # them. Parse leniently and replace each lone surrogate with U+FFFD, as PostHog does.
    try:
        return _replace_lone_surrogates(json.loads(payload))
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", "invalid_json") from exc


def _replace_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    return value
