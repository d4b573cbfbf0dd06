"""The built-in sinks, imported here by hand so each registers itself (``sinks.registry``)."""

from sinks.clickhouse import register as clickhouse  # noqa: F401 - registers `clickhouse`
from sinks.files import register as files  # noqa: F401 - registers `files`
from sinks.kafka import register as kafka  # noqa: F401 - registers `kafka`
from sinks.webhook import register as webhook  # noqa: F401 - registers `webhook`
