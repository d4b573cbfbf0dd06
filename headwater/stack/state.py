"""The stack state file: which services ``headwater up`` started, where, and as which process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServiceRecord:
    """One service the local stack started."""

    name: str
    pid: int
    port: int
    url: str
    log: str
    topology: str | None = None  # the detached apps: the topology file they started with,
    topology_digest: str | None = None  # and the sha256 of its content then
    members: tuple[ServiceRecord, ...] = ()  # a service of several processes (Kafka's brokers): each one;
    # then ``pid``, ``port`` and ``log`` are the first member's and ``url`` lists every member's

    @property
    def processes(self) -> tuple[ServiceRecord, ...]:
        """The processes of this service: its members, or itself."""
        return self.members or (self,)

    @property
    def log_path(self) -> Path:
        return Path(self.log)


def read_state(path: Path) -> dict[str, ServiceRecord]:
    """The services recorded in ``path``; empty when the stack never ran."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {name: _record(record) for name, record in raw.get("services", {}).items()}


def _record(raw: dict[str, Any]) -> ServiceRecord:
    members = tuple(_record(m) for m in raw.get("members", ()))
    return ServiceRecord(**{**raw, "members": members})


def write_state(path: Path, services: dict[str, ServiceRecord]) -> None:
    """Replace the state file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"services": {n: asdict(r) for n, r in services.items()}}, indent=2))
    tmp.replace(path)
