"""Errors raised while loading a topology or running the stream.

    StreamsError
    ├── TopologyError        topology.yaml is invalid; carries one ``file:line:col path: message`` per problem
    └── StageError           a stage failed in a way its error policy must handle
"""

from __future__ import annotations


class StreamsError(Exception):
    """Base of the errors this package raises."""


class TopologyError(StreamsError):
    """The topology file is invalid. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StageError(StreamsError):
    """A stage failed; the stage runner applies the stage's error policy."""
