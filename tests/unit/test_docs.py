"""The project's docs stand alone and render: no link outside the repository, no broken table,
no reference text rendered as code.

A new user found links to a design folder that is not in the repository, a table cut in two by
a blank line, and RST markup shown as a code block in the generated reference (issue #10).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headwater.topology_docs import markdown
from tests.support import ROOT

DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "bench" / "README.md",
               *(ROOT / "docs").glob("*.md")])
PACKAGES = ("headwater", "capture_gateway", "streams", "sinks", "schemas")
OUTSIDE = re.compile(r"\.\./shared|/work/shared|REFERENCE(\.md| §| section)|DESIGN(\.md|'s)")
"""The team's design notes: not part of the repository, so nothing a user reads may point there."""


def _prose(path: Path) -> list[tuple[int, str]]:
    """The lines of a Markdown file outside fenced code blocks, numbered from 1."""
    out, fenced = [], False
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append((n, line))
    return out


def _user_facing_files() -> list[Path]:
    sources = [p for package in PACKAGES for p in (ROOT / package).rglob("*")
               if p.suffix in {".py", ".avsc", ".json", ".sql", ".yaml", ".txt"} and "__pycache__" not in p.parts]
    return [*DOCS, *sorted(sources), ROOT / "Makefile"]  # the default topology is in the package


def test_nothing_points_outside_the_repository() -> None:
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in _user_facing_files()
             for n, line in enumerate(path.read_text().splitlines(), start=1) if OUTSIDE.search(line)]
    assert found == [], "move what users need into docs/ and point there"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_name_files_in_the_repository(path: Path) -> None:
    broken = [f"{n}: {target}" for n, line in _prose(path)
              for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", line)
              if "://" not in target and not target.startswith("mailto:")
              and not (path.parent / target).exists()]
    assert broken == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_starts_with_a_header(path: Path) -> None:
    """A row after a blank line starts a new table; without a header and `|---|` line it renders as text."""
    lines = _prose(path)
    headless = [n for i, (n, line) in enumerate(lines) if line.startswith("|")
                and (i == 0 or not lines[i - 1][1].startswith("|"))
                and not (i + 1 < len(lines) and re.match(r"^\|\s*:?-{3,}", lines[i + 1][1]))]
    assert headless == [], f"{path.name}: table rows without a header (a blank line inside a table?)"


def test_the_topology_reference_has_no_code_blocks_or_rst() -> None:
    text = (ROOT / "docs" / "topology.md").read_text()
    assert "``" not in text
    indented = [line for line in text.splitlines() if line.startswith("    ")]
    assert indented == [], "an indented line renders as a code block"


def test_docstrings_become_markdown_paragraphs() -> None:
    doc = """One step.

    ``type`` is a stage (``headwater topology stages``)
    or ``plugin``.
    """
    assert markdown(doc) == "One step.\n\n`type` is a stage (`headwater topology stages`) or `plugin`."
