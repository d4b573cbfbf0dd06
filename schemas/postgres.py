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
    (
        2,
        """
        ALTER TABLE projects
            ADD COLUMN monthly_event_quota bigint CHECK (monthly_event_quota >= 0),
            ADD COLUMN rate_limit_per_second double precision CHECK (rate_limit_per_second > 0),
            ADD COLUMN discard_client_ip boolean NOT NULL DEFAULT false;
        CREATE TABLE event_restrictions (
            id bigserial PRIMARY KEY,
            project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            action text NOT NULL CHECK (action IN ('drop', 'skip_person_processing', 'dead_letter', 'force_overflow')),
            events text[] NOT NULL DEFAULT '{}',
            distinct_ids text[] NOT NULL DEFAULT '{}',
            uuids text[] NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX event_restrictions_project ON event_restrictions (project_id);
        """,
    ),
)

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS headwater_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
