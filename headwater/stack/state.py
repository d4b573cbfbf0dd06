"""The stack state file: which services ``headwater up`` started, where, and as which process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


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

    @property
    def log_path(self) -> Path:
        return Path(self.log)


def read_state(path: Path) -> dict[str, ServiceRecord]:
    """The services recorded in ``path``; empty when the stack never ran."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {name: ServiceRecord(**record) for name, record in raw.get("services", {}).items()}


def write_state(path: Path, services: dict[str, ServiceRecord]) -> None:
    """Replace the state file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"services": {n: asdict(r) for n, r in services.items()}}, indent=2))
    tmp.replace(path)
