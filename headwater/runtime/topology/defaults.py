"""The default topology shipped inside the package, and writing it out for a user to edit.

``headwater/defaults/topology.yaml`` (with its test cases, ``topology.tests.yaml``) is package
data, so ``pip install headwater`` users have it too. ``headwater topology init`` copies both
where the user wants their own; the test suite loads these, never the user's file.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

DEFAULTS = Path(str(files("headwater").joinpath("defaults")))
DEFAULT_TOPOLOGY = DEFAULTS / "topology.yaml"
"""The packaged default topology: what ``headwater topology init`` writes."""
DEFAULT_CASES = DEFAULTS / "topology.tests.yaml"
"""Its ``headwater topology test`` cases."""


def cases_path(topology: Path) -> Path:
    """Where the test cases of ``topology`` live: ``<stem>.tests.yaml`` beside it."""
    return topology.with_name(topology.stem + ".tests.yaml")


def write_default(path: Path, force: bool = False) -> list[tuple[Path, bool]]:
    """Copy the default topology to ``path`` and its cases beside it; an existing file is kept
    unless ``force``. Returns each target with whether it was written."""
    done: list[tuple[Path, bool]] = []
    for source, target in ((DEFAULT_TOPOLOGY, path), (DEFAULT_CASES, cases_path(path))):
        if target.exists() and not force:
            done.append((target, False))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        done.append((target, True))
    return done
