"""The ClickHouse sink: embedded chDB (served by the local stack's owner process) or a server.

``register`` (the type), ``config`` (its settings), ``sink`` (batches and retries), ``client``
(HTTP and native transports), ``rows`` (records → rows).
"""
