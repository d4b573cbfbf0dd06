"""Signing a webhook body, and checking a signature (what a receiver does).

``X-Headwater-Signature: sha256=<hex>`` is HMAC-SHA256 of the exact request body with the
destination's secret. A receiver recomputes it over the bytes it received and compares in
constant time (``verify``); any re-serialisation of the JSON before checking breaks it.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Headwater-Signature"
PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The header's value for ``body``."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret``."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)
