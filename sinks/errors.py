"""Errors raised by sinks and their clients.

    SinkError                   (hangs from headwater.errors.HeadwaterError)
    ├── RetriableSinkError      the target is unreachable or overloaded; retry the batch
    └── PermanentSinkError      the target refused the data or the statement; retrying won't help

Client libraries' exceptions (httpx, clickhouse-driver) are translated into these at the
client boundary, re-raised ``from`` the original. Unknown sink types are
``headwater.errors.UnknownComponent``; a duplicate registration ``RegistrationError``.
"""

from headwater.errors import HeadwaterError


class SinkError(HeadwaterError):
    """Base of the errors sinks raise."""


class RetriableSinkError(SinkError):
    """A transient failure: the same batch may succeed later."""


class PermanentSinkError(SinkError):
    """The target rejected the request; the same batch will fail again."""
