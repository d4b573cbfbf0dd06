"""``headwater query`` without ClickHouse: statement splitting, refusals, and the output formats."""

from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.cli.query import Format, show, statements
from headwater.errors import ConfigError
from sinks.clickhouse.client import QueryResult

runner = CliRunner()


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT 1", ["SELECT 1"]),
    ("SELECT 1;", ["SELECT 1"]),
    ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
    ("SELECT 'a;b', \"c;d\", `e;f`", ["SELECT 'a;b', \"c;d\", `e;f`"]),
    ("SELECT 'it\\'s; fine'", ["SELECT 'it\\'s; fine'"]),
    ("SELECT 1 -- a comment; not a statement\n", ["SELECT 1"]),
    ("SELECT /* ; */ 1", ["SELECT   1"]),
    (" ; ;", []),
])
def test_statements_split_only_at_semicolons_outside_quotes_and_comments(sql: str, expected: list[str]) -> None:
    assert statements(sql) == expected


def test_two_statements_are_refused_before_anything_runs() -> None:
    result = runner.invoke(app, ["query", "SELECT 1; SELECT 2"], env={"COLUMNS": "200"})
    assert isinstance(result.exception, ConfigError)  # the CLI's main prints it as one line
    assert "2 statements given" in str(result.exception)


RESULT = QueryResult(columns=["n", "text"], types=["UInt8", "String"], rows=[[1, "a,b"], [2, "tab\there"]])


def test_csv_and_tsv_quote_what_needs_it(capsys: pytest.CaptureFixture[str]) -> None:
    show(RESULT, Format.csv)
    assert capsys.readouterr().out == 'n,text\n1,"a,b"\n2,tab\there\n'
    show(RESULT, Format.tsv)
    assert capsys.readouterr().out == 'n\ttext\n1\ta,b\n2\t"tab\there"\n'
    show(RESULT, Format.json)
    assert json.loads(capsys.readouterr().out) == [{"n": 1, "text": "a,b"}, {"n": 2, "text": "tab\there"}]


def test_values_of_the_native_protocol_print_as_their_text(capsys: pytest.CaptureFixture[str]) -> None:
    """clickhouse-driver gives datetimes and UUIDs as Python objects; they print as ClickHouse writes them."""
    when, uid = datetime(2023, 11, 14, 22, 13, 20), UUID("00000000-0000-0000-0000-000000000001")
    show(QueryResult(columns=["t", "u", "a"], types=["DateTime", "UUID", "Array(UUID)"], rows=[[when, uid, [uid]]]),
         Format.csv)
    assert capsys.readouterr().out == ('t,u,a\n2023-11-14 22:13:20,00000000-0000-0000-0000-000000000001,'
                                       '"[""00000000-0000-0000-0000-000000000001""]"\n')
