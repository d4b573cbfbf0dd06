"""KRaft cluster ids that Kafka's storage tool accepts on its command line."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from headwater.stack import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 as the first byte encodes to "-" in URL-safe base64: the id would read as an option.
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))
    cluster_id = kafka.new_cluster_id()
    assert not cluster_id.startswith("-")
    assert len(cluster_id) == 22


def test_a_stored_id_starting_with_a_dash_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "cluster.id").write_text("-abcdefghijklmnopqrstu")
    assert not kafka._cluster_id(tmp_path).startswith("-")
    (tmp_path / "cluster.id").write_text("Zabcdefghijklmnopqrstu")
    assert kafka._cluster_id(tmp_path) == "Zabcdefghijklmnopqrstu"
