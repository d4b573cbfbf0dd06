"""The mistakes a person makes editing topology.yaml get plain messages at the right `file:line:col`.

Each broken file is the default topology with one slip typed into it, as issue #10 reported them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.errors import TopologyError
from headwater.runtime.topology import load_topology
from streams.components import component_problems
from tests.support import DEFAULT_TOPOLOGY

VALIDATE = "    - name: validate\n      type: validate\n"


def _broken(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """The default topology with ``old`` replaced by ``new``, and the 1-based line ``new`` starts on."""
    text = DEFAULT_TOPOLOGY.read_text()
    assert text.count(old) == 1, f"the default topology changed: {old!r} is not in it once"
    path = tmp_path / "topology.yaml"
    path.write_text(text.replace(old, new))
    return path, text[: text.index(old)].count("\n") + 1


def _problems(path: Path) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        load_topology(path, [component_problems])
    return caught.value.problems


def test_a_dedented_key_says_which_key_and_where_it_belongs(tmp_path: Path) -> None:
    path, line = _broken(tmp_path, VALIDATE, "    - name: validate\n    type: validate\n")
    assert _problems(path) == [
        f"{path}:{line + 1}:5 `type:` is indented less than `name:` on line {line} (column 5, not 7), so it "
        "belongs to no mapping above it; if it goes with `name`, move it to column 7"]


def test_an_over_indented_key_says_it_became_part_of_the_value_above(tmp_path: Path) -> None:
    path, line = _broken(tmp_path, VALIDATE, "    - name: validate\n        type: validate\n")
    assert _problems(path) == [
        f"{path}:{line + 1}:9 `type:` is indented more than `name:` on line {line} (column 9, not 7), so YAML "
        "reads it as part of `name`'s value; keys of one mapping start in the same column: move `type:` to column 7"]


def test_a_dedented_topic_key_says_to_indent_it_under_its_topic(tmp_path: Path) -> None:
    old = "  events_overflow:     # hot keys, routed here by the gateway without a key\n    partitions: 4\n"
    path, line = _broken(tmp_path, old, old.replace("    partitions", "  partitions"))
    assert _problems(path) == [
        f"{path}:{line}:3 topics.events_overflow: topic 'events_overflow' has nothing under it: indent its keys "
        "under it (two more spaces), or write `events_overflow: {}` for the defaults",
        f"{path}:{line + 1}:3 topics.partitions: `partitions` is a topic key, but it sits where topic names go "
        f"(same column as the name): indent it under `events_overflow` (line {line})",
    ]


def test_a_misspelt_key_gets_did_you_mean_and_no_second_missing_key_error(tmp_path: Path) -> None:
    path, line = _broken(tmp_path, VALIDATE, "    - name: validate\n      typ: validate\n")
    assert _problems(path) == [f"{path}:{line + 1}:7 pipeline.stages[2].typ: unknown key 'typ': did you mean 'type'?"]


def test_a_misspelt_stage_type_gets_did_you_mean(tmp_path: Path) -> None:
    path, line = _broken(tmp_path, VALIDATE, "    - name: validate\n      type: validat\n")
    [problem] = _problems(path)
    assert problem.startswith(f"{path}:{line + 1}:7 pipeline.stages[2].type: unknown stage type 'validat': "
                              "did you mean 'validate'? (known: ")


def test_misspelt_sink_types_plugins_policies_and_config_keys_get_did_you_mean(tmp_path: Path) -> None:
    path, line = _broken(tmp_path, VALIDATE, "    - name: validate\n      type: validate\n"
                         "      config: {max_distinct_id_lenght: 3}\n"
                         "    - {name: pii, type: plugin, plugin: property_filtr}\n")
    text = path.read_text().replace("    type: clickhouse\n    source: events_processed",
                                    "    type: clickhose\n    source: events_processed")
    path.write_text(text)
    problems = [p.removeprefix(f"{path}:") for p in _problems(path)]
    assert problems[0] == (f"{line + 2}:16 pipeline.stages[2].config.max_distinct_id_lenght: unknown key "
                           "'max_distinct_id_lenght': did you mean 'max_distinct_id_length'?")
    assert problems[1].startswith(f"{line + 3}:33 pipeline.stages[3].plugin: unknown plugin 'property_filtr': "
                                  "did you mean 'property_filter'? (known: ")
    assert problems[2].endswith("sinks[0].type: unknown sink type 'clickhose': did you mean 'clickhouse'? "
                                "(known: clickhouse, files, kafka)")

    path, line = _broken(tmp_path, "      on_error: retry\n", "      on_error: retyr\n")
    assert _problems(path) == [f"{path}:{line}:7 pipeline.stages[0].on_error: 'retyr' is not one of retry, "
                               "dead_letter, drop, stop: did you mean 'retry'?"]


@pytest.mark.parametrize(("text", "expected"), [
    ("topics: {}\ntopics: {}\n", "2:1 `topics` appears twice in one mapping: keep one of them"),
    ("topics:\n\tevents_raw: {}\n", "2:1 a tab: YAML indents with spaces only, replace the tab with spaces"),
    ("pipeline: {sources: [a, b}\n",
     "1:26 the `[` at line 1, column 21 is not closed: add `]`, or a `,` between items"),
    ("app_id: a: b\n", "1:10 a second `: ` on one line: a value that contains `: ` must be quoted (`key: \"a: b\"`)"),
])
def test_other_syntax_errors_read_plainly(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    assert [p.removeprefix(f"{path}:") for p in _problems(path)] == [expected]


def test_an_unknown_key_without_a_close_match_lists_the_keys(tmp_path: Path) -> None:
    old = "  events_dlq:          # events a stage could not process, with reason and stage in headers\n"
    path, line = _broken(tmp_path, old, old + "    colour: blue\n")
    assert _problems(path) == [f"{path}:{line + 1}:5 topics.events_dlq.colour: unknown key 'colour' "
                               "(a topic has: partitions, replication_factor, retention_hours, compacted)"]
