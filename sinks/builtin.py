"""The built-in sinks, imported here by hand so each registers itself (``sinks.registry``)."""

from sinks.clickhouse import register as clickhouse  # noqa: F401 - registers `clickhouse`
