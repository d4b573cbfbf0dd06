"""The root of every error Headwater raises, and the errors the runtime leaf shares.

    HeadwaterError                       caught by the CLI: one clear line, no traceback
    ├── ConfigError                      a setting or file the user gave is wrong
    │   ├── TopologyError                topology.yaml is invalid; one ``file:line:col path: message`` per problem
    │   └── UnknownComponent             a topology names a stage, plugin, sink or agent nobody provides
    ├── RegistrationError                two components claimed one name (a bug in the registering code)
    ├── NotRunningError                  a service the command needs is not configured or not started
    ├── StackError                       a local-stack service failed to start, stop or answer
    ├── Unavailable                      a dependency (Kafka, Postgres, Redis) cannot answer now; retry later
    ├── SchemaError      (schemas)       data does not match its schema
    ├── SinkError        (sinks)         a sink or its client failed, retriable or permanent
    ├── CaptureError     (capture_gateway) a capture request ends in an HTTP error answer
    └── StreamsError     (streams)       the worker: stages, plugins, agents, the runner

Each package's tree hangs from here and lives in its ``errors.py``. Foreign errors (confluent-
kafka, psycopg, redis, httpx, chDB, clickhouse-driver) are translated where the package talks to
them and re-raised ``from`` the original. ``Unavailable`` is what a transient outage becomes
everywhere: the gateway answers 503, the stage runner retries the batch, the CLI says what is down.

This module imports nothing, so every layer may use it.
"""


class HeadwaterError(Exception):
    """Base of every error Headwater raises."""


class ConfigError(HeadwaterError):
    """A setting, environment variable or file given by the user is wrong."""


class TopologyError(ConfigError):
    """The topology file is invalid. ``problems`` holds one ``file:line:col path: message`` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UnknownComponent(ConfigError):
    """A topology names a stage type, plugin, sink type or agent handler that cannot be found.

    ``field`` is the YAML key at fault (``type``, ``plugin``, ``handler``), for the error's location.
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class RegistrationError(HeadwaterError):
    """Two components of one kind (stages, plugins, sinks) were registered under the same name."""


class NotRunningError(HeadwaterError):
    """A service the command needs is not configured or not reachable."""


class StackError(HeadwaterError):
    """A local-stack service failed to start, stop or become healthy."""


class Unavailable(HeadwaterError):
    """A dependency cannot answer now (a transient outage); the same call may succeed later.

    ``code`` names what is down, for the gateway's 503 answer (``kafka_unavailable``,
    ``projects_unavailable``, ``topic_missing``, ...).
    """

    def __init__(self, message: str, code: str = "unavailable") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
