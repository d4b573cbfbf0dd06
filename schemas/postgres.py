"""Postgres schema, as numbered migrations applied once each (``headwater migrate``)."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE projects (
            id bigserial PRIMARY KEY,
            name text NOT NULL,
            api_token text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        );
        """,
    ),
)

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS headwater_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
