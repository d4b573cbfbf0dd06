"""Errors the worker raises while it runs a topology.

    StreamsError                (hangs from headwater.errors.HeadwaterError)
    ├── StageError              a stage failed in a way its error policy handles
    │   ├── StageTimeout        a stage did not finish its call within ``timeout_seconds``
    │   └── PluginError         a plugin says "this event failed" (plugin API; its message is the DLQ's ``error``)
    ├── StageStartError         a stage could not start (a plugin's ``setup`` failed): the worker does not start
    ├── PipelineStopped         a stage with ``on_error: stop`` failed: the worker stops, nothing is committed
    ├── AgentError              a plugin agent's handler cannot be loaded
    └── AgentFailed             a plugin agent with ``on_error: stop`` raised: the worker stops

A transient outage of Redis or Postgres, inside a stage or a plugin, is
``headwater.errors.Unavailable``: the runner retries it without limit (the events are safe in
Kafka and the partition waits). Unknown stage types and plugins are
``headwater.errors.UnknownComponent``; a duplicate registration ``RegistrationError``.
"""

from __future__ import annotations

from headwater.errors import HeadwaterError


class StreamsError(HeadwaterError):
    """Base of the errors this package raises."""


class StageError(StreamsError):
    """A stage failed; the stage runner applies the stage's error policy."""


class StageTimeout(StageError):
    """A stage did not finish an event within its ``timeout_seconds``."""


class PluginError(StageError):
    """Raised by a plugin to say "this event failed": the stage's ``on_error`` policy applies.

    Part of the plugin API (``from streams.plugins import PluginError``). Unlike any other
    exception, its message alone (without the class name) becomes the dead letter's ``error``
    header, so write it for the person who reads ``headwater dlq list``.
    """


class StageStartError(StreamsError):
    """A stage's ``start`` (a plugin's ``setup``) failed; the message names the stage and the cause."""


class PipelineStopped(StreamsError):
    """A stage with ``on_error: stop`` failed; the worker must stop without committing."""


class AgentError(StreamsError):
    """A plugin agent's handler cannot be found or is not a function."""


class AgentFailed(StreamsError):
    """A plugin agent's handler raised and its ``on_error`` is ``stop``: the worker stops."""


class WindowError(StreamsError):
    """A window cannot go on: its source holds something that is not events."""
