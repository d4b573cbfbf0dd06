"""What a health check found: ``Health(ok, detail)``, for the readiness pages and ``Sink.healthcheck``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    """Whether a dependency answers, and a line saying so (or what is wrong)."""

    ok: bool
    detail: str
