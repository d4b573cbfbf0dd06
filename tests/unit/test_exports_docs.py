"""docs/exports.md's examples work: every YAML sink in it validates in the default topology, and
the receiver's signature check it shows accepts what the webhook sink signs (and nothing else)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from headwater.runtime.topology import load_topology
from sinks.webhook.signing import sign
from streams.components import component_problems
from tests.conftest import DEFAULT_TOPOLOGY
from tests.support import ROOT

DOCS = (ROOT / "docs" / "exports.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS, flags=re.DOTALL)


def test_every_sink_in_the_examples_validates_in_the_default_topology(tmp_path: Path) -> None:
    base: dict[str, Any] = yaml.safe_load(DEFAULT_TOPOLOGY.read_text())
    sinks = [(block, yaml.safe_load(block)) for block in _blocks("yaml")]
    declared = [(block, doc) for block, doc in sinks if isinstance(doc, dict) and "sinks" in doc]
    assert len(declared) >= 5, "the examples lost their sinks"
    for block, doc in declared:
        topology = {**base, "topics": {**base["topics"], **doc.get("topics", {})},
                    "sinks": [*base.get("sinks", []), *doc["sinks"]]}
        path = tmp_path / "topology.yaml"
        path.write_text(yaml.safe_dump(topology))
        loaded = load_topology(path, [component_problems])  # raises TopologyError with file:line:col
        assert {s["name"] for s in doc["sinks"]} <= {s.name for s in loaded.sinks}, block


def test_the_receivers_signature_check_accepts_what_the_sink_signs() -> None:
    [snippet] = [b for b in _blocks("python") if "def verified" in b]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    verified = namespace["verified"]
    body = b'{"destination": "hook", "records": []}'
    assert verified(b"secret", body, sign(b"secret", body))
    assert not verified(b"secret", body + b"\n", sign(b"secret", body))
    assert not verified(b"other", body, sign(b"secret", body))
    assert not verified(b"secret", body, None)
