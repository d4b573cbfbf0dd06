"""What the tests and the bench share: spawning processes, waiting with a deadline, the stack.

- ``waiting``: ``wait_until(predicate, timeout, message)``, the one way to wait for a condition;
- ``logs``: a log file's tail, and what it gained since the last look;
- ``processes``: a child process with its own environment and log; the gateway and the worker;
- ``stack``: the local stack, started if needed, migrated, stopped only where this run started it;
- ``topology``: isolated copies of the default topology (own topics, own consumer group);
- ``kafka``: reading topics back, the envelopes decoded; a consumer group's committed offsets;
- ``clickhouse``: queries, and waiting for a count;
- ``metrics``: a Prometheus ``/metrics`` page, parsed.

``make bench`` imports these too (``bench/run.py`` puts the repository root on ``sys.path``),
so nothing here imports pytest.
"""

from __future__ import annotations

from pathlib import Path

from headwater.runtime.topology.defaults import DEFAULT_TOPOLOGY as PACKAGED_TOPOLOGY

ROOT = Path(__file__).resolve().parents[2]
"""The repository: the working directory of every process these helpers start."""
DEFAULT_TOPOLOGY = PACKAGED_TOPOLOGY
"""The packaged default topology (``headwater/defaults/topology.yaml``), never the repository's
``topology.yaml``: that one is the user's to edit (docs/plugins.md), so no test depends on it."""
