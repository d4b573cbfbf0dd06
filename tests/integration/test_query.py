"""``headwater query`` against the real embedded ClickHouse: statements with and without a result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from headwater.runtime.settings import Endpoints
from tests.support import ROOT


def _query(*args: str) -> tuple[int, str, str]:
    """The real command, as a user runs it in the project."""
    done = subprocess.run([sys.executable, "-m", "headwater.cli", "query", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}, check=False)
    return done.returncode, done.stdout, done.stderr


def test_select_insert_alter_and_a_syntax_error_each_answer_plainly(stack: Endpoints) -> None:
    table = f"query_test_{uuid.uuid4().hex[:8]}"
    assert _query(f"CREATE TABLE {table} (a Int32, s String) ENGINE = MergeTree ORDER BY a")[0] == 0
    try:
        code, out, err = _query(f"INSERT INTO {table} VALUES (1, 'x'), (2, 'y;z')")
        assert (code, out) == (0, "")
        assert "ok: the statement ran and returns no rows" in err
        assert _query(f"ALTER TABLE {table} DELETE WHERE a = 1 SETTINGS mutations_sync = 1")[0] == 0
        code, out, _ = _query("--format", "json", f"SELECT a, s FROM {table} ORDER BY a;")
        assert code == 0
        assert json.loads(out) == [{"a": 2, "s": "y;z"}]
        assert _query("-f", "csv", f"SELECT a, s FROM {table}")[1] == "a,s\n2,y;z\n"
        assert _query("-f", "tsv", f"SELECT a FROM {table}")[1] == "a\n2\n"
        code, out, _ = _query(f"SELECT s FROM {table}")
        assert code == 0
        assert "y;z" in out
        code, _, err = _query("SELEC 1")
        assert code == 1
        assert "ClickHouse refused the statement: Code: 62" in err
        assert "Traceback" not in err
    finally:
        _query(f"DROP TABLE IF EXISTS {table}")
