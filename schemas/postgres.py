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
    (
        3,
        # Persons, PostHog's person model (docs/persons.md). A person's uuid is the
        # UUIDv5 of the project and its first distinct id, so two workers that create the
        # same person create the same key; a distinct id has one owner (its primary key).
        """
        CREATE TABLE persons (
            project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            uuid uuid NOT NULL,
            created_at timestamptz NOT NULL,
            properties jsonb NOT NULL DEFAULT '{}',
            is_identified boolean NOT NULL DEFAULT false,
            version bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
            PRIMARY KEY (project_id, uuid)
        );
        CREATE TABLE person_distinct_ids (
            project_id bigint NOT NULL,
            distinct_id text NOT NULL CHECK (length(distinct_id) BETWEEN 1 AND 400),
            person_uuid uuid NOT NULL,
            version bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
            PRIMARY KEY (project_id, distinct_id),
            FOREIGN KEY (project_id, person_uuid) REFERENCES persons (project_id, uuid)
        );
        CREATE INDEX person_distinct_ids_person ON person_distinct_ids (project_id, person_uuid);
        CREATE TABLE group_types (
            project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            group_type text NOT NULL CHECK (length(group_type) BETWEEN 1 AND 400),
            group_type_index smallint NOT NULL CHECK (group_type_index BETWEEN 0 AND 4),
            PRIMARY KEY (project_id, group_type),
            UNIQUE (project_id, group_type_index)
        );
        CREATE TABLE groups (
            project_id bigint NOT NULL,
            group_type_index smallint NOT NULL,
            group_key text NOT NULL CHECK (length(group_key) BETWEEN 1 AND 400),
            properties jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL,
            version bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
            PRIMARY KEY (project_id, group_type_index, group_key),
            FOREIGN KEY (project_id, group_type_index) REFERENCES group_types (project_id, group_type_index)
        );
        -- The ClickHouse rows of each person write, stored in the write's transaction and deleted
        -- once Kafka acknowledged them: a worker that dies in between leaves them for a relay.
        CREATE TABLE person_outbox (
            id bigserial PRIMARY KEY,
            topic text NOT NULL,
            value bytea NOT NULL,
            count integer NOT NULL CHECK (count > 0),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    (
        4,
        # What `headwater dlq replay` put back: so `dlq list` can say so and a second replay skips it.
        # A letter is its dead-letter topic, partition and offset (and its first event's uuid, so a
        # recreated topic's offsets are not taken for old ones).
        """
        CREATE TABLE dead_letter_replays (
            topic text NOT NULL,
            partition integer NOT NULL,
            "offset" bigint NOT NULL,
            event_uuid text NOT NULL DEFAULT '',
            source_topic text NOT NULL,
            replayed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (topic, partition, "offset")
        );
        """,
    ),
    (
        5,
        # How far each source partition's person updates are applied, moved in the same transaction
        # as the person writes: a batch read again after a crash skips what it already applied.
        # Keyed by Kafka's topic id (its base64 text), so a topic deleted and created again starts from nothing.
        """
        CREATE TABLE person_offsets (
            topic_id text NOT NULL,
            partition integer NOT NULL,
            topic text NOT NULL,
            "offset" bigint NOT NULL,
            index integer NOT NULL,  -- the last applied event's index in the envelope at "offset"
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (topic_id, partition)
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
