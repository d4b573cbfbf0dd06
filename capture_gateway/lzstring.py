"""lz-string's base64 format: the compression old posthog-js versions use (hint ``lz64``/``lz-string``).

Those SDKs compress the JSON payload with the JavaScript library lz-string
(``LZString.compressToBase64``) before posting it. This module decodes that format, with the
decompressed size limited *while* decompressing so that a small payload cannot expand into
gigabytes (a decompression bomb), and provides the matching compressor for tests and tools.

The format, in short: an LZW variant over UTF-16 code units. The code stream starts with a
dictionary of three reserved codes — ``0`` "an 8-bit literal follows", ``1`` "a 16-bit literal
follows", ``2`` "end of stream" — and every literal and every new phrase takes the next code.
Codes are written with a width that grows by one bit each time the dictionary outgrows it;
each value's bits go least significant first, and the bit stream fills each output character
most significant bit first, six bits per base64 character. The stream ends with code ``2``,
zero bits up to the next character boundary (at least one bit), and ``=`` padding up to a
multiple of four characters.

Output limits count UTF-16 code units, lz-string's own characters; that equals the number of
Python characters except that each character outside the Basic Multilingual Plane (an emoji,
say) counts twice.
"""

from __future__ import annotations

import sys

__all__ = ["LZStringError", "LZStringTooLarge", "compress_to_base64", "decompress_from_base64"]


class LZStringError(ValueError):
    """The data is not a valid lz-string base64 stream.

    ValueError
    └── LZStringError          malformed: bad character, truncated stream, invalid code
        └── LZStringTooLarge   valid so far, but the output would exceed the limit
    """


class LZStringTooLarge(LZStringError):
    """Decompressing would produce more than the allowed number of characters."""


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BITS_PER_CHAR = 6
_INVALID = 0xFF

# The bit stream is handled least significant bit first (the order values are written in);
# a base64 character holds its six bits most significant first, so characters map to and from
# their bit-reversed values.
_REVERSED6 = tuple(int(f"{value:06b}"[::-1], 2) for value in range(64))
_ENCODE = tuple(_ALPHABET[_REVERSED6[value]] for value in range(64))
_DECODE_TABLE = bytes(
    _REVERSED6[_ALPHABET.index(chr(byte))] if chr(byte) in _ALPHABET else _INVALID for byte in range(256)
)

_UTF16_NATIVE = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


def _code_units(text: str) -> memoryview:
    """``text`` as UTF-16 code units, as JavaScript strings hold it (astral characters → pairs)."""
    return memoryview(text.encode(_UTF16_NATIVE, "surrogatepass")).cast("H")


def _from_code_units(text: str) -> str:
    """Join the surrogate pairs of a string built from UTF-16 code units into real characters."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


class _BitWriter:
    """Bits into base64 characters: values least significant bit first, characters filled from the top."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.acc = 0  # pending bits, the earliest written in the lowest position
        self.nbits = 0

    def write(self, value: int, width: int) -> None:
        self.acc |= value << self.nbits
        self.nbits += width
        while self.nbits >= _BITS_PER_CHAR:
            self.out.append(_ENCODE[self.acc & 0x3F])
            self.acc >>= _BITS_PER_CHAR
            self.nbits -= _BITS_PER_CHAR

    def finish(self) -> str:
        """Zero bits up to the next character boundary (a whole character when on one), then ``=`` padding."""
        self.write(0, _BITS_PER_CHAR - self.nbits % _BITS_PER_CHAR)
        return "".join(self.out) + "=" * (-len(self.out) % 4)


class _Compressor:
    """lz-string's compressor, its dictionary kept as a trie: (phrase code, code unit) → code."""

    def __init__(self) -> None:
        self.bits = _BitWriter()
        self.char_codes: dict[int, int] = {}  # code unit → code
        self.phrase_codes: dict[int, int] = {}  # (phrase code << 16 | code unit) → code of phrase + unit
        self.pending_literals: set[int] = set()  # code units whose literal has not been written yet
        self.dict_size = 3
        self.num_bits = 2
        self.enlarge_in = 2

    def _count_code(self) -> None:
        self.enlarge_in -= 1
        if self.enlarge_in == 0:
            self.enlarge_in = 1 << self.num_bits
            self.num_bits += 1

    def _emit(self, phrase: int, unit: int) -> None:
        """Write a phrase (``unit`` ≥ 0 when it is that single code unit): its literal, or its code."""
        if unit in self.pending_literals:
            if unit < 256:
                self.bits.write(0, self.num_bits)
                self.bits.write(unit, 8)
            else:
                self.bits.write(1, self.num_bits)
                self.bits.write(unit, 16)
            self._count_code()
            self.pending_literals.discard(unit)
        else:
            self.bits.write(phrase, self.num_bits)
        self._count_code()

    def compress(self, units: memoryview) -> str:
        char_codes, phrase_codes = self.char_codes, self.phrase_codes
        phrase = -1  # code of the current phrase; -1 before the first character
        phrase_unit = -1  # the phrase's code unit when it is a single one, else -1
        for unit in units:
            unit_code = char_codes.get(unit)
            if unit_code is None:
                unit_code = char_codes[unit] = self.dict_size
                self.dict_size += 1
                self.pending_literals.add(unit)
            if phrase < 0:
                phrase, phrase_unit = unit_code, unit
                continue
            key = phrase << 16 | unit
            longer = phrase_codes.get(key)
            if longer is not None:
                phrase, phrase_unit = longer, -1
                continue
            self._emit(phrase, phrase_unit)
            phrase_codes[key] = self.dict_size
            self.dict_size += 1
            phrase, phrase_unit = unit_code, unit
        if phrase >= 0:
            self._emit(phrase, phrase_unit)
        self.bits.write(2, self.num_bits)
        return self.bits.finish()


def compress_to_base64(text: str) -> str:
    """Compress ``text`` exactly as lz-string's ``LZString.compressToBase64`` does."""
    return _Compressor().compress(_code_units(text))


def _base64_values(data: str) -> bytes:
    """The bit-reversed 6-bit values of ``data``'s characters (spaces read as ``+``, padding dropped)."""
    stripped = data.replace(" ", "+").rstrip("=")
    try:
        values = stripped.encode("ascii").translate(_DECODE_TABLE)
    except UnicodeEncodeError:
        raise LZStringError("lz-string data contains a character outside the base64 alphabet") from None
    if _INVALID in values:
        raise LZStringError("lz-string data contains a character outside the base64 alphabet")
    return values


class _BitReader:
    """The inverse of ``_BitWriter``, over the values of ``_base64_values``."""

    def __init__(self, values: bytes) -> None:
        self.values = values
        self.pos = 0  # next value to take bits from
        self.acc = 0  # bits taken but not yet read, the earliest in the lowest position
        self.nbits = 0

    def read(self, width: int) -> int:
        while self.nbits < width:
            if self.pos >= len(self.values):
                raise LZStringError("lz-string data is truncated")
            self.acc |= self.values[self.pos] << self.nbits
            self.pos += 1
            self.nbits += _BITS_PER_CHAR
        value = self.acc & ((1 << width) - 1)
        self.acc >>= width
        self.nbits -= width
        return value


def decompress_from_base64(data: str, limit: int) -> str:
    """Decompress lz-string ``compressToBase64`` output, refusing to produce more than ``limit``.

    ``limit`` counts UTF-16 code units (see the module docstring) and is enforced while
    decompressing. A space is read as ``+`` (what form decoding makes of it); ``=`` is allowed
    only as trailing padding. Anything after the end-of-stream code is ignored, as lz-string does.

    Raises ``LZStringTooLarge`` past the limit and ``LZStringError`` for malformed input.
    """
    bits = _BitReader(_base64_values(data))
    too_large = f"lz-string data decompresses to more than {limit} characters"

    kind = bits.read(2)
    if kind == 2:
        return ""
    if kind > 2:
        raise LZStringError("lz-string data starts with an invalid code")
    first = chr(bits.read(8 if kind == 0 else 16))
    if limit < 1:
        raise LZStringTooLarge(too_large)

    dictionary: list[str] = ["", "", "", first]  # codes 0-2 are reserved
    result: list[str] = [first]
    produced = 1
    phrase = first
    num_bits = 3
    enlarge_in = 4
    while True:
        code = bits.read(num_bits)
        if code < 3:
            if code == 2:
                break
            dictionary.append(chr(bits.read(8 if code == 0 else 16)))
            code = len(dictionary) - 1
            enlarge_in -= 1
            if enlarge_in == 0:
                enlarge_in = 1 << num_bits
                num_bits += 1

        if code < len(dictionary):
            entry = dictionary[code]
        elif code == len(dictionary):
            entry = phrase + phrase[0]
        else:
            raise LZStringError(f"lz-string data refers to code {code}, not yet defined")
        produced += len(entry)
        if produced > limit:
            raise LZStringTooLarge(too_large)
        result.append(entry)
        dictionary.append(phrase + entry[0])
        phrase = entry
        enlarge_in -= 1
        if enlarge_in == 0:
            enlarge_in = 1 << num_bits
            num_bits += 1

    return _from_code_units("".join(result))
