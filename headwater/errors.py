"""Errors raised by the CLI, settings and local stack.

    HeadwaterError
    ├── ConfigError          a setting or file the user gave is wrong
    ├── StackError           a local service failed to start, stop or answer
    └── NotRunningError      a service the command needs is not reachable

Every error carries a message that says what to do; the CLI prints it without a traceback.
"""


class HeadwaterError(Exception):
    """Base of the errors this package raises."""


class ConfigError(HeadwaterError):
    """A setting, environment variable or file given by the user is wrong."""


class StackError(HeadwaterError):
    """A local-stack service failed to start, stop or become healthy."""


class NotRunningError(HeadwaterError):
    """A service the command needs is not reachable."""
