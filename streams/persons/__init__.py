"""PostHog's person model: persons, their distinct ids and merges, applied a batch at a time.

``rules`` is pure: given what the store knows about a batch's distinct ids, it applies the
batch's events in order and says what each event leaves with and what must be written. The
store (Postgres, cached in Redis) loads before and writes after, once per batch.
"""
