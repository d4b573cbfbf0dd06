"""Plugin names: a built-in's name is never shadowed silently, and installed plugins show their summary."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from headwater.errors import ConfigError, UnknownComponent
from headwater.scaffold import scaffold
from streams.plugins import registry


def test_the_scaffold_refuses_a_built_in_plugins_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a built-in plugin's"):
        scaffold("user_agent", tmp_path)
    assert not (tmp_path / "user_agent").exists()


def _installed(monkeypatch: pytest.MonkeyPatch, **entries: str) -> None:
    found = {name: EntryPoint(name, value, registry.ENTRY_POINT_GROUP) for name, value in entries.items()}
    monkeypatch.setattr(registry, "_entry_point_plugins", lambda: found)


def test_an_installed_plugin_named_like_a_built_in_is_an_error_not_shadowed(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, user_agent="tests.fixtures.plugins:Raiser")
    with pytest.raises(UnknownComponent, match="both built in and registered by an installed package"):
        registry.resolve_plugin("user_agent")
    assert "CLASH" in registry.available_plugins()["user_agent"][0]


def test_plugin_list_shows_an_installed_plugins_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, raiser="tests.fixtures.plugins:Raiser", broken="no_such_module:Nothing")
    found = registry.available_plugins()
    assert found["raiser"][1] == registry._summary(registry.resolve_plugin("raiser"))
    assert found["raiser"][1]
    assert found["broken"][1].startswith("cannot load: ModuleNotFoundError")
