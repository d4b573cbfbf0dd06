"""The wheel is a package that starts: `pip install headwater-*.whl` alone gives a working Headwater.

Builds the wheel from the files the Dockerfile builds it from, installs it with its dependencies
(and no extra) into a fresh virtualenv, and, from a directory outside the repo, proves that:

- the wheel carries every file under the five packages, .py or data (Avro schemas, registry.json,
  kafka-pom.xml, py.typed, any file added later);
- ``headwater --help``, ``headwater topology init`` and ``validate --offline`` of what it wrote exit 0;
- every module of every package imports, from the venv's site-packages and not from the repo.

Needs PyPI for the dependencies (about a minute); no service.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(900)

PACKAGES = ("headwater", "capture_gateway", "streams", "sinks", "schemas")
# Modules that import an optional extra the test does not install, with that extra's import name.
# headwater.stack.chdb_server imports chdb (the `chdb` extra): only the local dev stack runs it.
NEEDS_EXTRA = {"headwater.stack.chdb_server": "chdb"}

IMPORT_ALL = """
import importlib, importlib.util, json, pkgutil, sys, sysconfig
repo, packages, needs_extra, out = sys.argv[1], sys.argv[2].split(","), json.loads(sys.argv[3]), sys.argv[4]
site = sysconfig.get_path("purelib")
assert not any(p and p.startswith(repo) for p in sys.path), sys.path
def fail(name): raise ImportError(f"cannot import package {name}")
imported, skipped = [], []
for package in packages:
    names = [package] + [m.name for m in pkgutil.walk_packages(
        importlib.import_module(package).__path__, package + ".", onerror=fail)]
    for name in names:
        if name in needs_extra:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                assert exc.name == needs_extra[name], (name, exc)
                skipped.append(name)
                continue
            raise AssertionError(f"{name} imported: drop it from NEEDS_EXTRA")
        origin = importlib.util.find_spec(name).origin
        assert origin and origin.startswith(site), (name, origin, site)
        assert importlib.import_module(name).__file__ == origin, name
        imported.append(name)
with open(out, "w") as f:
    json.dump({"imported": imported, "skipped": skipped}, f)
"""


@dataclass(frozen=True)
class Installed:
    source: Path  # the copy of the repo's files the wheel was built from
    wheel: Path
    bin: Path  # the fresh venv's bin/
    outside: Path  # a working directory outside the repo


def _run(*cmd: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}
           and not k.startswith("HEADWATER_")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(proc.args[:4])[:200]  # not the whole IMPORT_ALL script
    assert proc.returncode == 0, f"{command} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    # A clean copy, not the repo itself: setuptools never prunes build/lib, so an in-tree build can
    # ship modules that were moved away since the last build.
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    outside = tmp / "outside"
    outside.mkdir()
    pip = (sys.executable, "-m", "pip")
    _ok(_run(*pip, "wheel", "--no-deps", "-q", "-w", tmp / "dist", source, cwd=outside, timeout=300))
    [wheel] = (tmp / "dist").glob("headwater-*.whl")
    _ok(_run(sys.executable, "-m", "venv", "--without-pip", tmp / "venv", cwd=outside, timeout=120))
    python = tmp / "venv" / "bin" / "python"
    _ok(_run(*pip, "--python", python, "install", "-q", wheel, cwd=outside, timeout=600))
    return Installed(source, wheel, python.parent, outside)


def test_the_wheel_carries_every_file_of_every_package(installed: Installed) -> None:
    wanted = {p.relative_to(installed.source).as_posix() for package in PACKAGES
              for p in (installed.source / package).rglob("*") if p.is_file()}
    missing = wanted - set(zipfile.ZipFile(installed.wheel).namelist())
    assert not missing, f"not in the wheel (see [tool.setuptools.package-data]): {sorted(missing)}"


def test_the_cli_starts_from_the_wheel(installed: Installed) -> None:
    assert "topology" in _ok(_run(installed.bin / "headwater", "--help", cwd=installed.outside, timeout=60))
    # The default topology is package data: `topology init` writes it from the wheel, and it validates.
    written = installed.outside / "mine" / "topology.yaml"
    _ok(_run(installed.bin / "headwater", "topology", "init", written, cwd=installed.outside, timeout=60))
    _ok(_run(installed.bin / "headwater", "topology", "validate", "--offline", written,
             cwd=installed.outside, timeout=60))


def test_every_module_imports_from_the_wheel(installed: Installed) -> None:
    out = installed.outside / "imported.json"
    _ok(_run(installed.bin / "python", "-c", IMPORT_ALL, ROOT, ",".join(PACKAGES), json.dumps(NEEDS_EXTRA), out,
             cwd=installed.outside, timeout=120))
    result = json.loads(out.read_text())
    assert sorted(result["skipped"]) == sorted(NEEDS_EXTRA), "a NEEDS_EXTRA module is not in the wheel any more"
    expected = {".".join(p.relative_to(installed.source).with_suffix("").parts).removesuffix(".__init__")
                for package in PACKAGES for p in (installed.source / package).rglob("*.py")}
    assert set(result["imported"]) == expected - set(NEEDS_EXTRA)
