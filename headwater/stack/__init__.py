"""The local stack: real Kafka, Postgres, Redis and embedded ClickHouse as child processes.

``headwater up`` starts what is not configured elsewhere, waits until each answers, and
records what it started in ``<state_dir>/stack.json``; ``headwater down`` stops exactly that.
"""
