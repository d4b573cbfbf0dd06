"""Persons in Postgres, cached in Redis: one read and one write per batch, never one per event.

Reading a batch's distinct ids costs two Redis ``MGET`` s (distinct id → person uuid, then
uuid → person); only the misses go to Postgres, in one query. Writing a batch's ``Changes``
is one Postgres transaction whose every statement checks what it expects (a person still at the
version it was read at, a distinct id still without an owner): when another worker got there
first the transaction rolls back with ``PersonConflict`` and the caller reloads from Postgres
and applies the batch again. Around the write, the cache entries it changes are deleted before
the transaction and set after it, each only if its version is newer than what the cache holds,
so a slow writer never puts an older person back.

The rows ClickHouse's person tables need (``Written``) are encoded into envelopes and stored
in the same transaction, in ``person_outbox``; the stage hands them to the pipeline, which sends
them with the batch, and each is deleted once Kafka acknowledged it. So a worker killed between
the Postgres commit and the Kafka ack loses nothing: ``relay`` sends what an earlier worker left
(rows are versioned, so sending one twice is harmless).

Redis or Postgres down is ``headwater.errors.Unavailable``: the stage retries, the partition waits.

Arrays go to Postgres in binary (``%b``): psycopg's text format escapes every element of a list
with a regular expression in Python, which cost ~45 µs a person row (26% of the worker's CPU on
the persons bench); binary, ~3 µs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from headwater.errors import Unavailable
from headwater.runtime.topology import PersonTopics
from streams import telemetry
from streams.outbox import OutMessage, Send
from streams.persons.groups import GroupUpdate, next_indexes
from streams.persons.offsets import Progress, TopicIds
from streams.persons.process import AlreadyApplied, PersonConflict
from streams.persons.rows import DistinctIdRow, GroupRow, PersonRow, Written, envelopes
from streams.persons.rules import Changes, Known, Person

CACHE_SECONDS = 7 * 24 * 3600
RELAY_AFTER_SECONDS = 30.0
"""Outbox rows older than this are an earlier worker's that never got sent."""

_ID_KEY = "headwater:person-id:{team}:{distinct_id}"
_PERSON_KEY = "headwater:person:{team}:{uuid}"

# Sets KEYS[i] to ARGV[2i-1] .. "|" .. ARGV[2i] unless the cache holds a version at least as new.
# The last ARGV is the expiry in seconds.
_SET_IF_NEWER = """
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[2 * i - 1])
  local held = redis.call('GET', key)
  local held_version = held and tonumber(string.match(held, '^(%d+)|')) or -1
  if version > held_version then
    redis.call('SET', key, ARGV[2 * i - 1] .. '|' .. ARGV[2 * i], 'EX', ttl)
  end
end
return 0
"""

_LOAD = """
SELECT d.project_id, d.distinct_id, d.version AS id_version, p.uuid::text AS uuid,
       (extract(epoch FROM p.created_at) * 1000000)::bigint AS created_at,
       p.properties, p.is_identified, p.version
FROM unnest(%b::bigint[], %b::text[]) AS q (project_id, distinct_id)
JOIN person_distinct_ids d ON d.project_id = q.project_id AND d.distinct_id = q.distinct_id
JOIN persons p ON p.project_id = d.project_id AND p.uuid = d.person_uuid
"""

_INSERT_PERSONS = """
INSERT INTO persons (project_id, uuid, created_at, properties, is_identified, version)
SELECT u.project_id, u.uuid, timestamptz 'epoch' + u.created_at * interval '1 microsecond',
       u.properties::jsonb, u.is_identified, u.version
FROM unnest(%b::bigint[], %b::uuid[], %b::bigint[], %b::text[], %b::boolean[], %b::bigint[])
     AS u (project_id, uuid, created_at, properties, is_identified, version)
ON CONFLICT DO NOTHING
RETURNING uuid
"""

_UPDATE_PERSONS = """
UPDATE persons p
SET created_at = timestamptz 'epoch' + u.created_at * interval '1 microsecond',
    properties = u.properties::jsonb, is_identified = u.is_identified, version = u.version
FROM unnest(%b::bigint[], %b::uuid[], %b::bigint[], %b::text[], %b::boolean[], %b::bigint[], %b::bigint[])
     AS u (project_id, uuid, created_at, properties, is_identified, version, expected)
WHERE p.project_id = u.project_id AND p.uuid = u.uuid AND p.version = u.expected
RETURNING p.uuid
"""

_INSERT_IDS = """
INSERT INTO person_distinct_ids (project_id, distinct_id, person_uuid, version)
SELECT u.project_id, u.distinct_id, u.person_uuid, 0
FROM unnest(%b::bigint[], %b::text[], %b::uuid[]) AS u (project_id, distinct_id, person_uuid)
ON CONFLICT DO NOTHING
RETURNING distinct_id
"""

_MOVE_IDS = """
UPDATE person_distinct_ids d SET person_uuid = m.target, version = d.version + 1
FROM unnest(%b::bigint[], %b::uuid[], %b::uuid[]) AS m (project_id, source, target)
WHERE d.project_id = m.project_id AND d.person_uuid = m.source
RETURNING d.project_id, d.distinct_id, d.person_uuid::text AS person_uuid, d.version
"""

_INSERT_OUTBOX = """
INSERT INTO person_outbox (topic, value, count)
SELECT * FROM unnest(%b::text[], %b::bytea[], %b::integer[])
RETURNING id
"""

_DELETE_OUTBOX = "DELETE FROM person_outbox WHERE id = ANY(%s)"

_NEW_OFFSETS = """
INSERT INTO person_offsets (topic_id, partition, topic, "offset", index)
SELECT u.topic_id, u.partition, u.topic, -1, -1
FROM unnest(%b::text[], %b::integer[], %b::text[]) AS u (topic_id, partition, topic)
ON CONFLICT DO NOTHING
"""

_APPLIED_OFFSETS = """
SELECT o.topic, o.partition, o."offset", o.index FROM person_offsets o
JOIN unnest(%b::text[], %b::integer[]) AS q (topic_id, partition)
  ON o.topic_id = q.topic_id AND o.partition = q.partition
ORDER BY o.topic_id, o.partition
FOR UPDATE OF o
"""

_MOVE_OFFSETS = """
INSERT INTO person_offsets AS o (topic_id, partition, topic, "offset", index)
SELECT * FROM unnest(%b::text[], %b::integer[], %b::text[], %b::bigint[], %b::integer[])
ON CONFLICT (topic_id, partition) DO UPDATE
SET "offset" = EXCLUDED."offset", index = EXCLUDED.index, updated_at = now()
"""

_STALE_OUTBOX = """
SELECT id, topic, value, count FROM person_outbox
WHERE created_at < now() - %s * interval '1 second' AND topic = ANY(%s)
ORDER BY id LIMIT %s
"""

_GROUP_TYPES = "SELECT group_type, group_type_index FROM group_types WHERE project_id = %s"

_INSERT_GROUP_TYPES = """
INSERT INTO group_types (project_id, group_type, group_type_index)
SELECT %s, u.name, u.index FROM unnest(%b::text[], %b::smallint[]) AS u (name, index)
ON CONFLICT DO NOTHING
"""

_UPSERT_GROUPS = """
INSERT INTO groups AS g (project_id, group_type_index, group_key, properties, created_at, version)
SELECT u.project_id, u.type_index, u.key, u.properties::jsonb,
       timestamptz 'epoch' + u.created_at * interval '1 microsecond', 0
FROM unnest(%b::bigint[], %b::smallint[], %b::text[], %b::text[], %b::bigint[])
     AS u (project_id, type_index, key, properties, created_at)
ON CONFLICT (project_id, group_type_index, group_key) DO UPDATE
SET properties = g.properties || EXCLUDED.properties, version = g.version + 1
WHERE g.properties || EXCLUDED.properties IS DISTINCT FROM g.properties
RETURNING g.project_id, g.group_type_index, g.group_key, g.properties,
          (extract(epoch FROM g.created_at) * 1000000)::bigint AS created_at, g.version
"""

_DELETE_PERSONS = """
DELETE FROM persons p
USING unnest(%b::bigint[], %b::uuid[], %b::bigint[]) AS m (project_id, source, version)
WHERE p.project_id = m.project_id AND p.uuid = m.source AND p.version = m.version
RETURNING p.project_id, p.uuid::text AS uuid, (extract(epoch FROM p.created_at) * 1000000)::bigint AS created_at,
          p.version
"""


def _person_doc(person: Person) -> str:
    return orjson.dumps({"u": person.uuid, "c": person.created_at, "p": person.properties,
                         "i": person.is_identified}).decode()


def _person_from_doc(version: int, doc: bytes) -> Person:
    data = orjson.loads(doc)
    return Person(data["u"], data["c"], data["p"], data["i"], version)


def _split(value: bytes | str) -> tuple[int, bytes]:
    raw = value.encode() if isinstance(value, str) else value
    version, _, payload = raw.partition(b"|")
    return int(version), payload


class PersonStore:
    """A batch's persons: ``load`` before the rules run, ``write`` their ``Changes`` after.

    Uses the worker's Postgres pool and Redis client; owns neither.
    """

    def __init__(self, postgres: AsyncConnectionPool[Any], redis: aioredis.Redis, topics: PersonTopics | None,
                 topic_ids: TopicIds, cache_seconds: int = CACHE_SECONDS) -> None:
        self._pool = postgres
        self._redis = redis
        self._topics = topics
        self._topic_ids = topic_ids
        self._cache_seconds = cache_seconds
        self._set_if_newer = redis.register_script(_SET_IF_NEWER)
        self._delivered: list[int] = []  # acknowledged, to delete with the next write (or relay)

    # -- reading -------------------------------------------------------------------------------

    async def load(self, ids: Collection[tuple[int, str]], *, use_cache: bool = True) -> dict[int, Known]:
        """What the store holds for ``(team_id, distinct_id)`` pairs, per team."""
        owners: dict[int, dict[str, str]] = defaultdict(dict)
        persons: dict[int, dict[str, Person]] = defaultdict(dict)
        misses = list(ids)
        if use_cache and misses:
            misses = await self._from_cache(misses, owners, persons)
            telemetry.PERSON_LOOKUPS.labels("cache").inc(len(ids) - len(misses))
        if misses:
            found = await self._from_postgres(misses, owners, persons)
            telemetry.PERSON_LOOKUPS.labels("postgres").inc(found)
            telemetry.PERSON_LOOKUPS.labels("new").inc(len(misses) - found)
        return {team: Known(owners[team], persons[team]) for team in {t for t, _ in ids}}

    async def _from_cache(self, ids: list[tuple[int, str]], owners: dict[int, dict[str, str]],
                          persons: dict[int, dict[str, Person]]) -> list[tuple[int, str]]:
        try:
            owned = await self._redis.mget([_ID_KEY.format(team=t, distinct_id=d) for t, d in ids])
            hits = [(pair, _split(value)[1].decode()) for pair, value in zip(ids, owned, strict=True) if value]
            wanted = sorted({(t, uuid) for (t, _), uuid in hits})
            docs = await self._redis.mget([_PERSON_KEY.format(team=t, uuid=u) for t, u in wanted]) if wanted else []
        except aioredis.RedisError as exc:
            raise Unavailable(f"the person cache (Redis) does not answer: {exc}", "persons_unavailable") from exc
        found: dict[tuple[int, str], Person] = {}
        for key, doc in zip(wanted, docs, strict=True):
            if doc:
                version, payload = _split(doc)
                if payload:  # an empty payload marks a person merged away
                    found[key] = _person_from_doc(version, payload)
        hit_ids = set()
        for (team, distinct_id), uuid in hits:
            person = found.get((team, uuid))
            if person is not None:
                owners[team][distinct_id] = uuid
                persons[team][uuid] = person
                hit_ids.add((team, distinct_id))
        return [pair for pair in ids if pair not in hit_ids]

    async def _from_postgres(self, ids: list[tuple[int, str]], owners: dict[int, dict[str, str]],
                             persons: dict[int, dict[str, Person]]) -> int:
        """Fill in what Postgres holds for ``ids`` (and cache it); how many had a person."""
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                cur = await conn.execute(_LOAD, ([t for t, _ in ids], [d for _, d in ids]))
                rows = await cur.fetchall()
        except (psycopg.Error, TimeoutError) as exc:
            raise Unavailable(f"cannot read persons from Postgres: {exc}", "persons_unavailable") from exc
        id_entries: list[tuple[str, int, str]] = []
        person_entries: dict[str, tuple[int, str]] = {}
        for row in rows:
            team, uuid = row["project_id"], row["uuid"]
            person = Person(uuid, row["created_at"], row["properties"], row["is_identified"], row["version"])
            owners[team][row["distinct_id"]] = uuid
            persons[team][uuid] = person
            id_entries.append((_ID_KEY.format(team=team, distinct_id=row["distinct_id"]), row["id_version"], uuid))
            person_entries[_PERSON_KEY.format(team=team, uuid=uuid)] = (person.version, _person_doc(person))
        entries = id_entries + [(k, v, doc) for k, (v, doc) in person_entries.items()]
        await self._cache(entries)
        return len(rows)

    # -- writing -------------------------------------------------------------------------------

    async def write(self, changes: Mapping[int, Changes], progress: Progress) -> Written:
        """Write every team's ``Changes`` and move the applied offsets (``streams.persons.offsets``)
        in one transaction; ``PersonConflict`` if another writer won, ``AlreadyApplied`` if a
        partition was applied past ``progress``'s first offset.

        The rows for ClickHouse are stored with the write and come back as ``Written.messages``.
        """
        changes = {team: c for team, c in changes.items() if not c.empty}
        written = Written()
        if not changes and not progress:
            return written
        topic_ids = await self._topic_ids({topic for topic, _ in progress}) if progress else {}
        await self._forget(changes)
        delivered, self._delivered = self._delivered, []
        try:
            async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
                await self._move_offsets(conn, progress, topic_ids)
                await self._apply(conn, changes, written)
                messages = await self._store_messages(conn, written)
                if delivered:
                    await conn.execute(_DELETE_OUTBOX, (delivered,))
        except BaseException as exc:
            self._delivered += delivered
            if isinstance(exc, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
                                psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation)):
                raise PersonConflict(str(exc)) from exc
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError)):
                raise Unavailable(f"cannot write persons to Postgres: {exc}", "persons_unavailable") from exc
            if isinstance(exc, AlreadyApplied):
                await self._check_topic_ids(topic_ids)
            raise
        written.messages = messages
        await self._remember(written)
        return written

    # -- groups --------------------------------------------------------------------------------

    async def group_types(self, team_id: int, names: Collection[str]) -> dict[str, int]:
        """The project's group types, ``names`` given an index first if they have none and one is free."""
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                for _ in range(3):  # another worker may take an index at the same moment
                    held = {r["group_type"]: r["group_type_index"]
                            for r in await (await conn.execute(_GROUP_TYPES, (team_id,))).fetchall()}
                    assigned = next_indexes(held, names)
                    if not assigned:
                        return held
                    await conn.execute(_INSERT_GROUP_TYPES, (team_id, list(assigned), list(assigned.values())))
                return held
        except (psycopg.Error, TimeoutError) as exc:
            raise Unavailable(f"cannot read group types from Postgres: {exc}", "persons_unavailable") from exc

    async def write_groups(self, updates: Sequence[GroupUpdate]) -> Written:
        """Set the groups' properties (created on first sight), and their rows for ClickHouse, in one transaction."""
        written = Written()
        if not updates:
            return written
        try:
            async with self._pool.connection(timeout=5.0) as conn, conn.transaction():
                cur = await conn.execute(_UPSERT_GROUPS, (
                    [u.team_id for u in updates], [u.group_type_index for u in updates],
                    [u.group_key for u in updates], [orjson.dumps(u.properties).decode() for u in updates],
                    [u.timestamp for u in updates]))
                written.groups = [GroupRow(r["project_id"], r["group_type_index"], r["group_key"], r["created_at"],
                                           r["properties"], r["version"]) for r in await cur.fetchall()]
                written.messages = await self._store_messages(conn, written)
        except (psycopg.Error, TimeoutError) as exc:
            raise Unavailable(f"cannot write groups to Postgres: {exc}", "persons_unavailable") from exc
        return written

    async def _store_messages(self, conn: psycopg.AsyncConnection[Any], written: Written) -> list[OutMessage]:
        """Encode the rows and keep them in the outbox, in the write's transaction."""
        if self._topics is None:
            return []
        encoded = envelopes(written, self._topics)
        if not encoded:
            return []
        cur = await conn.execute(_INSERT_OUTBOX, ([t for t, _, _ in encoded], [v for _, v, _ in encoded],
                                                  [c for _, _, c in encoded]))
        ids = [row["id"] for row in await cur.fetchall()]
        return [self._message(receipt, topic, value, count)
                for receipt, (topic, value, count) in zip(ids, encoded, strict=True)]

    def _message(self, receipt: int, topic: str, value: bytes, count: int) -> OutMessage:
        def delivered() -> None:
            self._delivered.append(receipt)

        return OutMessage(topic, value, count, on_delivered=delivered)

    async def relay(self, send: Send, older_than: float = RELAY_AFTER_SECONDS, limit: int = 500) -> int:
        """Delete what was delivered; send (then delete) outbox rows older than ``older_than`` seconds.

        Only rows for this store's topics (another topology may share the database). Those are
        an earlier worker's (a batch sends its rows within seconds, and every store
        deletes what was delivered at its next write or relay, every few seconds); one sent twice
        is harmless, the tables keep the highest version. How many were sent."""
        delivered, self._delivered = self._delivered, []
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                if delivered:
                    await conn.execute(_DELETE_OUTBOX, (delivered,))
                topics = [topic for _, topic in self._topics.topics()] if self._topics is not None else []
                cur = await conn.execute(_STALE_OUTBOX, (older_than, topics, limit))
                stale = await cur.fetchall()
        except (psycopg.Error, TimeoutError) as exc:
            self._delivered += delivered
            raise Unavailable(f"cannot read the person outbox: {exc}", "persons_unavailable") from exc
        for row in stale:
            await send(OutMessage(row["topic"], bytes(row["value"]), row["count"]))
        if stale:
            try:
                async with self._pool.connection(timeout=5.0) as conn:
                    await conn.execute(_DELETE_OUTBOX, ([row["id"] for row in stale],))
            except (psycopg.Error, TimeoutError) as exc:
                raise Unavailable(f"cannot clear the person outbox: {exc}", "persons_unavailable") from exc
        return len(stale)

    async def _check_topic_ids(self, held: Mapping[str, str]) -> None:
        """Before a batch is taken for a replay: was one of its topics deleted and created again
        since this worker asked? Then its offsets start anew: ``PersonConflict``, to apply it again."""
        self._topic_ids.forget(held)
        now = await self._topic_ids(held)
        if dict(now) != dict(held):
            raise PersonConflict(f"topics created again since this worker started: {sorted(held)}")

    async def _move_offsets(self, conn: psycopg.AsyncConnection[Any], progress: Progress,
                            topic_ids: Mapping[str, str]) -> None:
        """Lock the partitions' applied offsets; refuse a batch that overlaps them, else move them on."""
        if not progress:
            return
        keys = sorted(progress)
        # a row for every partition first: two writers of a partition's first batch then queue on its lock
        await conn.execute(_NEW_OFFSETS, ([topic_ids[t] for t, _ in keys], [p for _, p in keys], [t for t, _ in keys]))
        cur = await conn.execute(_APPLIED_OFFSETS, ([topic_ids[t] for t, _ in keys], [p for _, p in keys]))
        applied = {(r["topic"], r["partition"]): (r["offset"], r["index"]) for r in await cur.fetchall()}
        overlap = {key: order for key, order in applied.items() if key in progress and order >= progress[key][0]}
        if overlap:
            raise AlreadyApplied(overlap)
        await conn.execute(_MOVE_OFFSETS, ([topic_ids[t] for t, _ in keys], [p for _, p in keys],
                                           [t for t, _ in keys], [progress[k][1][0] for k in keys],
                                           [progress[k][1][1] for k in keys]))

    async def _apply(self, conn: psycopg.AsyncConnection[Any], changes: Mapping[int, Changes],
                     written: Written) -> None:
        created = [(team, p) for team, c in changes.items() for p in c.created]
        updated = sorted(((team, p, expected) for team, c in changes.items() for p, expected in c.updated),
                         key=lambda item: (item[0], item[1].uuid))  # one lock order for every writer
        new_ids = [(team, d, owner) for team, c in changes.items() for d, owner in c.new_ids]
        merges = sorted(((team, m) for team, c in changes.items() for m in c.merges),
                        key=lambda item: (item[0], item[1].source))
        if created:
            cur = await conn.execute(_INSERT_PERSONS, _person_columns(created))
            _expect(len(await cur.fetchall()), len(created), "a person this batch creates exists already")
        if updated:
            cur = await conn.execute(_UPDATE_PERSONS, (
                *_person_columns([(team, p) for team, p, _ in updated]), [e for _, _, e in updated]))
            _expect(len(await cur.fetchall()), len(updated), "a person changed since it was read")
        if new_ids:
            cur = await conn.execute(_INSERT_IDS, ([t for t, _, _ in new_ids], [d for _, d, _ in new_ids],
                                                   [o for _, _, o in new_ids]))
            _expect(len(await cur.fetchall()), len(new_ids), "a distinct id got a person since it was read")
        if merges:
            cur = await conn.execute(_MOVE_IDS, ([t for t, _ in merges], [m.source for _, m in merges],
                                                 [m.target for _, m in merges]))
            moved = [DistinctIdRow(r["project_id"], r["distinct_id"], r["person_uuid"], r["version"])
                     for r in await cur.fetchall()]
            cur = await conn.execute(_DELETE_PERSONS, ([t for t, _ in merges], [m.source for _, m in merges],
                                                       [m.source_version for _, m in merges]))
            deleted = await cur.fetchall()
            _expect(len(deleted), len(merges), "a merged person changed since it was read")
            written.distinct_ids.extend(moved)
            written.overrides.extend(moved)
            written.persons.extend(  # the row that ends the merged person in ClickHouse
                PersonRow(r["project_id"], Person(r["uuid"], r["created_at"], {}, False, r["version"] + 100),
                          is_deleted=True) for r in deleted)
        for team, c in changes.items():
            written.persons.extend(PersonRow(team, p) for p in c.created)
            written.persons.extend(PersonRow(team, p) for p, _ in c.updated)
            written.distinct_ids.extend(DistinctIdRow(team, d, owner, 0) for d, owner in c.new_ids)
            written.overrides.extend(DistinctIdRow(team, d, owner, 0) for d, owner in c.moved_new_ids)

    async def _forget(self, changes: Mapping[int, Changes]) -> None:
        """Delete the cache entries this write changes, before it: a failed refresh leaves misses, not stale hits."""
        keys = []
        for team, c in changes.items():
            keys += [_PERSON_KEY.format(team=team, uuid=p.uuid) for p, _ in c.updated]
            keys += [_PERSON_KEY.format(team=team, uuid=m.source) for m in c.merges]
        if keys:
            try:
                await self._redis.delete(*keys)
            except aioredis.RedisError as exc:
                raise Unavailable(f"the person cache (Redis) does not answer: {exc}", "persons_unavailable") from exc

    async def _remember(self, written: Written) -> None:
        entries: list[tuple[str, int, str]] = []
        for row in written.persons:
            key = _PERSON_KEY.format(team=row.team_id, uuid=row.person.uuid)
            entries.append((key, row.person.version, "" if row.is_deleted else _person_doc(row.person)))
        entries += [(_ID_KEY.format(team=r.team_id, distinct_id=r.distinct_id), r.version, r.person_uuid)
                    for r in written.distinct_ids]
        await self._cache(entries)

    async def _cache(self, entries: list[tuple[str, int, str]]) -> None:
        """Set each ``(key, version, payload)`` unless the cache holds it at a newer version.

        Best effort: a failure leaves the entries absent (``_forget`` deleted those a write
        changes), so the next read goes to Postgres instead of finding an older person.
        """
        if not entries:
            return
        args: list[str | int] = []
        for _, version, payload in entries:
            args += [version, payload]
        try:
            await self._set_if_newer(keys=[key for key, _, _ in entries], args=[*args, self._cache_seconds])
        except aioredis.RedisError:
            telemetry.PERSON_CACHE_WRITE_FAILURES.inc()


def _person_columns(people: list[tuple[int, Person]]) -> tuple[list[Any], ...]:
    return ([t for t, _ in people], [p.uuid for _, p in people], [p.created_at for _, p in people],
            [orjson.dumps(p.properties).decode() for _, p in people], [p.is_identified for _, p in people],
            [p.version for _, p in people])


def _expect(got: int, wanted: int, what: str) -> None:
    if got != wanted:
        raise PersonConflict(f"{what} ({got} of {wanted} rows as expected)")
