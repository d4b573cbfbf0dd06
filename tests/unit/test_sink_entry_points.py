"""Third-party sink types come through the ``headwater.sinks`` entry point group."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

from headwater.errors import RegistrationError, UnknownComponent
from headwater.runtime.registry import Registry
from sinks import registry


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """A registry of its own (the built-ins stay untouched) and the entry points the test declares."""
    points: list[EntryPoint] = []
    monkeypatch.setattr(registry, "SINKS", Registry("sink"))
    monkeypatch.setattr(registry, "entry_points", lambda group: [p for p in points if p.group == group])
    registry._load_entry_points.cache_clear()
    sys.modules.pop("tests.support.thirdparty_sink", None)  # registers again on import
    yield points
    registry._load_entry_points.cache_clear()
    sys.modules.pop("tests.support.thirdparty_sink", None)


def test_an_entry_point_adds_its_sink_type(isolated: list[EntryPoint]) -> None:
    isolated.append(EntryPoint("counting", "tests.support.thirdparty_sink:COUNTING", registry.ENTRY_POINT_GROUP))
    assert "counting" in registry.sink_types()
    sink = registry.resolve_sink("counting").build("mine", {"label": "x"}, None)  # type: ignore[arg-type]
    assert sink.name == "mine"


def test_an_entry_point_that_is_no_sink_type_says_which_package(isolated: list[EntryPoint]) -> None:
    isolated.append(EntryPoint("counting", "tests.support.thirdparty_sink:NOT_A_SINK_TYPE",
                               registry.ENTRY_POINT_GROUP))
    with pytest.raises(RegistrationError, match=r"NOT_A_SINK_TYPE.*must be the SinkType"):
        registry.sink_types()


def test_an_entry_point_named_unlike_its_type_is_refused(isolated: list[EntryPoint]) -> None:
    isolated.append(EntryPoint("s3", "tests.support.thirdparty_sink:COUNTING", registry.ENTRY_POINT_GROUP))
    with pytest.raises(RegistrationError, match="'s3'"):
        registry.resolve_sink("s3")


def test_an_entry_point_that_cannot_import_says_why(isolated: list[EntryPoint]) -> None:
    isolated.append(EntryPoint("gone", "no_such_package.sinks:GONE", registry.ENTRY_POINT_GROUP))
    with pytest.raises(RegistrationError, match=r"'gone'.*cannot be loaded: ModuleNotFoundError"):
        registry.sink_types()


def test_without_entry_points_an_unknown_type_is_still_unknown(isolated: list[EntryPoint]) -> None:
    with pytest.raises(UnknownComponent, match="unknown sink type 'counting'"):
        registry.resolve_sink("counting")
