"""``headwater plugin new NAME``: a plugin package to start from, with a test and sample events."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from headwater.errors import ConfigError

PYPROJECT = '''[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "headwater-plugin-{dist}"
version = "0.1.0"
description = "{title}: a Headwater plugin"
requires-python = ">=3.11"
dependencies = ["headwater"]

[project.entry-points."headwater.plugins"]
{name} = "{name}.plugin:{cls}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
pythonpath = ["src"]
'''

PLUGIN = '''"""{title}: a Headwater plugin. Edit ``process``; the settings live in ``Config``.

Written against Headwater's plugin API v1 (``streams.plugins``, docs/plugins.md).
"""

from __future__ import annotations

from pydantic import Field

from streams.plugins import Drop, Event, Plugin, PluginConfig, PluginContext


class {cls}(Plugin["{cls}.Config"]):
    """{title}: adds a property to every event (edit ``process`` to do your own work)."""

    name = "{name}"

    class Config(PluginConfig):
        property: str = Field("{name}_seen", description="The property this plugin sets.")

    async def process(self, event: Event, ctx: PluginContext[{cls}.Config]) -> Event | Drop | None:
        """Return the event (changed or not); ``Drop("reason")`` to drop it on purpose (counted by
        reason); ``None`` to drop it with an ingestion warning; raise ``PluginError`` when it cannot be
        handled (the stage's ``on_error`` applies). ``event.set`` is the person update."""
        event.properties[self.config.property] = True
        return event
'''

TEST = '''"""Tests for the {name} plugin: they run without Kafka or any service."""

from __future__ import annotations

import json
from pathlib import Path

from streams.plugins import API_VERSION
from streams.plugins.testing import PluginHarness
from {name}.plugin import {cls}

SAMPLES = json.loads((Path(__file__).parent.parent / "sample_events.json").read_text())


def test_written_against_plugin_api_v1() -> None:
    """Headwater's plugin API changes version only when it breaks plugins: read its CHANGELOG then."""
    assert API_VERSION == "1"


async def test_every_sample_event_goes_through() -> None:
    """The plugin handles every sample event: it returns it (changed or not) or drops it on purpose."""
    harness = PluginHarness({cls})
    results = await harness.run(*SAMPLES)
    assert len(results) == len(SAMPLES)
    for sample, result in zip(SAMPLES, results):
        if result is not None:
            assert result.event and result.distinct_id == sample["distinct_id"]


# Assert what your plugin does, e.g.:
#
# async def test_sets_the_property() -> None:
#     [out] = await PluginHarness({cls}, {{"property": "seen"}}).run(SAMPLES[0])
#     assert out is not None and out.properties["seen"] is True
'''

SAMPLES = '''[
  {{"event": "$pageview", "distinct_id": "user-1", "properties": {{"$current_url": "https://example.com/"}}}},
  {{"event": "signed_up", "distinct_id": "user-1", "properties": {{"plan": "pro"}}}},
  {{"event": "$identify", "distinct_id": "user-2", "properties": {{"$set": {{"email": "two@example.com"}}}}}}
]
'''

README = '''# {title}

A Headwater plugin (see Headwater's docs/plugins.md).

```sh
pip install -e .                 # into Headwater's environment (registers the entry point)
pytest                           # runs tests/ without any service
```

Then list it in `topology.yaml`, before `prepare`:

```yaml
    - name: {name}
      type: plugin
      plugin: {name}
      config: {{property: {name}_seen}}
```

and check it with `headwater topology validate`.
'''


def scaffold(name: str, directory: Path) -> Path:
    """Write the package ``directory/name`` and return its path; refuses to overwrite."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ConfigError(f"plugin name {name!r}: use snake_case letters, digits and _, starting with a letter")
    from streams.plugins.registry import builtin_plugins

    if name in builtin_plugins():
        raise ConfigError(f"plugin name {name!r} is a built-in plugin's (`headwater plugin list`): "
                          f"a topology's `plugin: {name}` would mean the built-in; choose another name")
    root = directory / name
    if root.exists():
        raise ConfigError(f"{root} exists already; choose another name or directory")
    values = {"name": name, "cls": "".join(p.capitalize() for p in name.split("_")),
              "title": name.replace("_", " ").capitalize(), "dist": name.replace("_", "-")}
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, f"src/{name}/__init__.py": '"""{title} plugin."""\n',
        f"src/{name}/plugin.py": PLUGIN, "tests/test_plugin.py": TEST, "sample_events.json": SAMPLES,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
    return root
