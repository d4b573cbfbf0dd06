"""lz-string base64 (the ``lz64`` compression of old posthog-js): round trips, known vectors, limits."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture_gateway.lzstring import LZStringError, LZStringTooLarge, compress_to_base64, decompress_from_base64

LIMIT = 10 * 1024 * 1024

# Produced by the JavaScript library itself (lz-string 1.5.0, ``LZString.compressToBase64``).
VECTORS = [
    ("hello world", "BYUwNmD2AEDukCcwBMg="),
    (
        '{"event":"$pageview","properties":{"distinct_id":"abc"}}',
        "N4IgpgbmB2AuIC4QBIAOBDA5pAlmA7iADQioBOA9qmGbHgM6KgAmO9d0AxrAPo7OIQ6AEacQAX3FA===",
    ),
    ("ünïcödé 😀", "D8Ow9wxgbwJglwAkLwbgAPaA"),
    ("", "Q==="),
    ("a", "IZA="),
    ("😀", "rwbgA9o="),
    ("a" * 68, "IY18ZXTskA=="),
    ("ab", "IYIyA==="),
    ("abab", "IYI1Q==="),
    ("__proto____proto____proto__", "PrAOCcHsBdJEIzvRsRA="),
]


@pytest.mark.parametrize(("text", "compressed"), VECTORS)
def test_compress_matches_the_javascript_library(text: str, compressed: str) -> None:
    assert compress_to_base64(text) == compressed


@pytest.mark.parametrize(("text", "compressed"), VECTORS)
def test_decompress_reads_the_javascript_library_output(text: str, compressed: str) -> None:
    assert decompress_from_base64(compressed, LIMIT) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "hello world",
        "The quick brown fox jumps over the lazy dog",
        "ünïcödé — ∑ 漢字 текст",
        "😀",
        "emoji 😀🎉👍🏽 and 𝄞 music, mixed with ascii 😀😀😀",
        "\x00\x01\xff\u0100\uffff",
    ],
)
def test_round_trip(text: str) -> None:
    assert decompress_from_base64(compress_to_base64(text), LIMIT) == text


def test_round_trip_of_long_repetitive_text() -> None:
    text = '{"event":"$pageview","properties":{"distinct_id":"user-1","$lib":"web"}},' * 20_000
    compressed = compress_to_base64(text)
    assert len(compressed) < len(text) // 20
    assert decompress_from_base64(compressed, LIMIT) == text


def test_round_trip_of_a_json_batch() -> None:
    batch = [{"event": f"e{i}", "properties": {"distinct_id": f"d{i % 7}", "n": i, "s": "ü😀"}} for i in range(2000)]
    text = orjson.dumps(batch).decode()
    assert orjson.loads(decompress_from_base64(compress_to_base64(text), LIMIT)) == batch


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_property(text: str) -> None:
    assert decompress_from_base64(compress_to_base64(text), LIMIT) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ab😀", max_size=400))
def test_round_trip_property_small_alphabet(text: str) -> None:
    # Few distinct characters make long phrases and many code-width changes.
    assert decompress_from_base64(compress_to_base64(text), LIMIT) == text


def test_lone_surrogates_round_trip() -> None:
    text = "a\ud800b\udfffc"
    assert decompress_from_base64(compress_to_base64(text), LIMIT) == text


def test_form_encoded_plus_as_space() -> None:
    text = "".join(chr(c) for c in range(32, 1200))
    compressed = compress_to_base64(text)
    assert "+" in compressed
    assert decompress_from_base64(compressed.replace("+", " "), LIMIT) == text


def test_padding_is_optional() -> None:
    assert decompress_from_base64(
        "N4IgpgbmB2AuIC4QBIAOBDA5pAlmA7iADQioBOA9qmGbHgM6KgAmO9d0AxrAPo7OIQ6AEacQAX3FA", LIMIT
    ) == ('{"event":"$pageview","properties":{"distinct_id":"abc"}}')


@pytest.mark.parametrize(
    "data",
    [
        "",  # no stream at all
        "===",  # padding only
        "BYUwNmD2AEDukCcwB",  # truncated before the end-of-stream code
        "BYUw*mD2",  # a character outside the alphabet
        "BYUwNmD2AEDukCcwBMg=\n",  # a newline
        "BYU=wNmD2AEDukCcwBMg=",  # padding in the middle
        "BYUwNmD2ü",  # non-ASCII
        "w",  # first code 3: not a literal or the end
        "/////////",  # refers to a code not yet defined
    ],
)
def test_malformed_input_raises(data: str) -> None:
    with pytest.raises(LZStringError):
        decompress_from_base64(data, LIMIT)


def test_truncations_of_a_valid_stream_never_crash() -> None:
    text = '{"event":"$pageview","properties":{"distinct_id":"abc","url":"https://example.com/ü😀"}}'
    compressed = compress_to_base64(text).rstrip("=")
    for end in range(len(compressed)):
        try:
            out = decompress_from_base64(compressed[:end], LIMIT)
        except LZStringError:
            continue
        assert text.startswith(out)


def test_errors_are_value_errors() -> None:
    assert issubclass(LZStringTooLarge, LZStringError)
    assert issubclass(LZStringError, ValueError)


def test_bomb_is_refused_while_decompressing() -> None:
    compressed = compress_to_base64("x" * (5 * 1024 * 1024))
    assert len(compressed) < 20_000
    with pytest.raises(LZStringTooLarge):
        decompress_from_base64(compressed, 1024 * 1024)


def test_limit_is_inclusive() -> None:
    text = "abc" * 1000
    compressed = compress_to_base64(text)
    assert decompress_from_base64(compressed, len(text)) == text
    with pytest.raises(LZStringTooLarge):
        decompress_from_base64(compressed, len(text) - 1)
    with pytest.raises(LZStringTooLarge):
        decompress_from_base64(compress_to_base64("a"), 0)
    assert decompress_from_base64(compress_to_base64(""), 0) == ""


def test_limit_counts_utf16_code_units() -> None:
    compressed = compress_to_base64("😀")
    assert decompress_from_base64(compressed, 2) == "😀"
    with pytest.raises(LZStringTooLarge):
        decompress_from_base64(compressed, 1)
