"""Everything that writes out of the pipeline: ClickHouse, files and Kafka exports now; webhook next.

One contract for all sinks (``sinks.base.Sink``), one registry (``sinks.registry``), one agent
that drives any of them (``sinks.agent``), their metrics (``sinks.telemetry``). Each sink type is
a package ``sinks/<type>/`` with the same files: ``register``, ``config``, ``sink``, ``client``,
``rows``. Importing this package registers the built-in sinks (``sinks.builtin``).
"""

from sinks import builtin  # noqa: F401 - registers the built-in sink types
