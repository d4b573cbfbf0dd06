"""``${NAME}`` and ``${NAME:-default}`` in topology.yaml: secrets out of the file, checked like any other value."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.errors import TopologyError
from headwater.runtime.topology import load_topology
from streams.components import component_problems
from tests.unit.test_builtin_plugins import write_topology

PII = """\
    - name: pii
      type: plugin
      plugin: property_filter
      config: {hash: [email], salt: "${PII_SALT}"}
"""


def _problems(path: Path) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        load_topology(path, [component_problems])
    return [p.removeprefix(f"{path}:") for p in caught.value.problems]


def test_a_variable_is_substituted_before_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_SALT", "from-the-environment")
    topology = load_topology(write_topology(tmp_path / "topology.yaml", PII), [component_problems])
    assert topology.pipeline.stages[1].config["salt"] == "from-the-environment"


def test_an_unset_variable_is_located_at_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PII_SALT", raising=False)
    monkeypatch.delenv("GEOIP_DB", raising=False)
    path = write_topology(tmp_path / "topology.yaml", PII + """\
    - name: geoip
      type: plugin
      plugin: geoip
      config:
        database_path: /var/lib/${GEOIP_DIR:-geoip}/${GEOIP_DB}
    """)
    assert _problems(path) == [
        "16:37 pipeline.stages[1].config.salt: environment variable PII_SALT is not set "
        "(give a default: ${PII_SALT:-default})",
        "21:24 pipeline.stages[2].config.database_path: environment variable GEOIP_DB is not set "
        "(give a default: ${GEOIP_DB:-default})",
    ]


def test_defaults_empty_values_literals_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.setenv("RATE", "0.25")
    monkeypatch.delenv("UNSET", raising=False)
    path = write_topology(tmp_path / "topology.yaml", """\
    - name: sampling
      type: plugin
      plugin: sampling
      config: {rate: "${RATE}", events: ["${UNSET:-$pageview}", "${EMPTY:-signup}", "a${EMPTY}b", "$${UNSET}"]}
    - {name: rules, type: plugin, plugin: event_rules,
       config: {rules: [{match: {property: {"${UNSET}": 1}}, action: drop}]}}
    """)
    config = load_topology(path, [component_problems]).pipeline.stages[1].config
    # a string stays a string (the model coerces "0.25" for a float field); `:-` also covers an empty value
    assert config == {"rate": "0.25", "events": ["$pageview", "signup", "ab", "${UNSET}"]}


def test_a_malformed_reference_is_a_problem(tmp_path: Path) -> None:
    path = write_topology(tmp_path / "topology.yaml", """\
    - {name: rules, type: plugin, plugin: event_rules, config: {rules: [{match: {event: "${1}"}, action: drop}]}}
    - {name: more, type: plugin, plugin: event_rules, config: {rules: [{match: {event: "${OPEN"}, action: drop}]}}
    """)
    assert _problems(path) == [
        "13:89 pipeline.stages[1].config.rules[0].match.event: `${1}` is not a variable reference: write "
        "${NAME} or ${NAME:-default} (and $${ for a literal ${)",
        "14:88 pipeline.stages[2].config.rules[0].match.event: `${` without its `}`: write ${NAME} or "
        "${NAME:-default} (and $${ for a literal ${)",
    ]
