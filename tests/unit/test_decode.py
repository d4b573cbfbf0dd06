"""Body decoding: the shapes and encodings the SDKs send, and the limits."""

from __future__ import annotations

import base64
import gzip
import zlib
from urllib.parse import quote

import orjson
import pytest

from capture_gateway.decode import RawRequest, decode_body
from capture_gateway.errors import BadRequest, PayloadTooLarge

EVENT = {"event": "e", "distinct_id": "d", "properties": {"token": "phc_x"}}
LIMIT = 1024 * 1024


def _req(body: bytes, query: dict[str, str] | None = None, content_type: str = "application/json",
         encoding: str = "") -> RawRequest:
    return RawRequest(body=body, query=query or {}, content_type=content_type, content_encoding=encoding)


def test_plain_json() -> None:
    assert decode_body(_req(orjson.dumps(EVENT)), LIMIT) == EVENT


def test_gzip_by_magic_bytes_as_text_plain_without_a_hint() -> None:
    body = gzip.compress(orjson.dumps([EVENT]))
    assert decode_body(_req(body, content_type="text/plain"), LIMIT) == [EVENT]


def test_gzip_by_content_encoding_and_by_query_hint() -> None:
    body = gzip.compress(orjson.dumps(EVENT))
    assert decode_body(_req(body, encoding="gzip"), LIMIT) == EVENT
    assert decode_body(_req(body, {"compression": "gzip-js"}), LIMIT) == EVENT


def test_deflate() -> None:
    assert decode_body(_req(zlib.compress(orjson.dumps(EVENT)), encoding="deflate"), LIMIT) == EVENT


def test_base64_form_data_with_plus_turned_into_space() -> None:
    encoded = base64.b64encode(orjson.dumps({**EVENT, "properties": {"x": "???>>>"}})).decode()
    assert "+" in encoded or "/" in encoded
    form = f"data={encoded.replace('+', ' ')}".encode()
    result = decode_body(_req(form, content_type="application/x-www-form-urlencoded"), LIMIT)
    assert result["properties"] == {"x": "???>>>"}


def test_data_query_parameter_base64_twice() -> None:
    once = base64.b64encode(orjson.dumps(EVENT))
    twice = base64.b64encode(once).decode()
    assert decode_body(_req(b"", {"data": twice}), LIMIT) == EVENT


def test_form_with_compression_field() -> None:
    data = quote(base64.b64encode(gzip.compress(orjson.dumps(EVENT))).decode())
    body = f"data={data}&compression=gzip-js".encode()
    assert decode_body(_req(body, content_type="application/x-www-form-urlencoded"), LIMIT) == EVENT


def test_gzip_bomb_is_refused_without_inflating_it_all() -> None:
    bomb = gzip.compress(b" " * (LIMIT * 20))
    assert len(bomb) < LIMIT // 10
    with pytest.raises(PayloadTooLarge):
        decode_body(_req(bomb), LIMIT)


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{nope", "invalid_json"), (b"", "empty_payload"), (b"\x1f\x8b\x08\x00bad", "invalid_compression")],
)
def test_malformed_bodies(body: bytes, code: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_body(_req(body), LIMIT)
    assert caught.value.code == code


def test_lz64_by_hint_and_its_bomb() -> None:
    from capture_gateway.lzstring import compress_to_base64

    body = compress_to_base64(orjson.dumps([EVENT]).decode()).encode()
    assert decode_body(_req(body, {"compression": "lz64"}), LIMIT) == [EVENT]
    form = b"data=" + quote(body.decode()).encode() + b"&compression=lz64"
    assert decode_body(_req(form, content_type="application/x-www-form-urlencoded"), LIMIT) == [EVENT]
    bomb = compress_to_base64("[" + " " * (LIMIT * 2) + "]").encode()
    with pytest.raises(PayloadTooLarge):
        decode_body(_req(bomb, {"compression": "lz-string"}), LIMIT)
    with pytest.raises(BadRequest):
        decode_body(_req(b"!!!", {"compression": "lz64"}), LIMIT)


def test_zstd_by_header_and_magic_with_a_limit() -> None:
    import zstandard

    body = zstandard.ZstdCompressor().compress(orjson.dumps(EVENT))
    assert decode_body(_req(body, encoding="zstd"), LIMIT) == EVENT
    assert decode_body(_req(body), LIMIT) == EVENT
    bomb = zstandard.ZstdCompressor().compress(b" " * (LIMIT * 3))
    with pytest.raises(PayloadTooLarge):
        decode_body(_req(bomb, encoding="zstd"), LIMIT)


def test_lone_surrogates_become_replacement_characters() -> None:
    body = b'[{"event":"x","distinct_id":"d","properties":{"s":"a\\ud83d","ok":"\\ud83d\\ude00"}}]'
    [event] = decode_body(_req(body), LIMIT)
    assert event["properties"] == {"s": "a\ufffd", "ok": "\U0001f600"}
    orjson.dumps(event)  # and it can be written again


def test_plus_in_a_data_query_parameter_survives() -> None:
    encoded = base64.b64encode(orjson.dumps({**EVENT, "properties": {"x": "???>>>"}})).decode()
    assert "+" in encoded
    assert decode_body(_req(b"", {"data": encoded.replace("+", " ")}), LIMIT)["properties"] == {"x": "???>>>"}


def test_a_gzip_hint_on_an_uncompressed_base64_form_is_read_as_it_is() -> None:
    """posthog-js 1.78.5: ``POST /e/?compression=gzip-js&ip=1&_=…&ver=1.78.5`` with a form body
    ``data=<base64 JSON>`` that is not compressed at all; PostHog's capture accepts it."""
    event = {"event": "$pageview", "properties": {"distinct_id": "d", "token": "phc_x", "$lib_version": "1.78.5"}}
    data = base64.b64encode(orjson.dumps(event)).decode()
    request = _req(f"data={data}".encode(), query={"compression": "gzip-js", "ip": "1", "_": "1700000000000",
                                                    "ver": "1.78.5"},
                   content_type="application/x-www-form-urlencoded")
    assert decode_body(request, LIMIT) == event
    plain = _req(orjson.dumps(event), query={"compression": "gzip-js"})
    assert decode_body(plain, LIMIT) == event
