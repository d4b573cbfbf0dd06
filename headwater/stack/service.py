"""The contract every local-stack service implements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from headwater.stack.state import ServiceRecord


@dataclass(frozen=True)
class StackContext:
    """Where a service keeps its files."""

    state_dir: Path
    cache_dir: Path
    kafka_brokers: int | None = None  # HEADWATER_KAFKA_BROKERS; None: as the state dir's cluster was formatted

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"


class Service(Protocol):
    """A real service the local stack runs as a child process.

    ``headwater up`` calls ``start`` only when the service's variable (``env_var``) is unset
    and no healthy record exists; ``start`` returns once the service answers, or raises
    ``StackError`` with the tail of its log. ``stop`` stops exactly the recorded process.
    """

    name: str
    env_var: str
    default_port: int

    def start(self, ctx: StackContext, port: int) -> ServiceRecord: ...

    def healthy(self, record: ServiceRecord) -> bool: ...

    def stop(self, ctx: StackContext, record: ServiceRecord) -> None: ...
