"""Packaging: the MIT LICENSE and its SPDX expression, classifiers, one version, no made-up URLs,
and a built wheel that carries the schema, the LICENSE and both entry points."""
from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import graphprobe

ROOT = Path(__file__).resolve().parent.parent
META = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_file_and_spdx_expression():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert META["license"] == "MIT" and META["license-files"] == ["LICENSE"]


def test_classifiers():
    cls = META["classifiers"]
    assert "Typing :: Typed" in cls and "Framework :: Pytest" in cls
    assert any(c.startswith("Topic :: ") for c in cls)
    assert [c for c in cls if c.startswith("Programming Language :: Python :: 3.")] == [
        f"Programming Language :: Python :: 3.{m}" for m in range(10, 14)]
    assert META["requires-python"] == ">=3.10"
    assert (ROOT / "graphprobe" / "py.typed").is_file()


def test_one_version_and_no_invented_urls():
    assert "version" not in META and META["dynamic"] == ["version"]
    assert "urls" not in META  # no public home yet: see the comment in pyproject.toml
    assert graphprobe.__version__.count(".") == 2


@pytest.mark.slow
def test_built_wheel(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (whl,) = tmp_path.glob("graphprobe-*.whl")
    z = zipfile.ZipFile(whl)
    names = z.namelist()
    info = f"graphprobe-{graphprobe.__version__}.dist-info"
    meta = z.read(f"{info}/METADATA").decode()
    assert f"Version: {graphprobe.__version__}\n" in meta
    assert "License-Expression: MIT\n" in meta and "Classifier: Typing :: Typed\n" in meta
    assert f"{info}/licenses/LICENSE" in names
    assert "graphprobe/model/schemas/report-1.json" in names and "graphprobe/py.typed" in names
    eps = z.read(f"{info}/entry_points.txt").decode()
    assert "graphprobe = graphprobe._entry:main_entry" in eps
    assert "[pytest11]\ngraphprobe.pytest_plugin = graphprobe.pytest_plugin" in eps


def test_hypothesis_keeps_nothing_in_the_checkout():
    # The property tests mine constants from the code under test and cache them under hypothesis's
    # home directory: conftest.py points it outside the checkout (and turns the database off).
    from hypothesis import settings
    from hypothesis.configuration import storage_directory

    home = Path(storage_directory("constants", intent_to_write=False).path).resolve()
    repo = Path(__file__).resolve().parent.parent
    assert repo != home and repo not in home.parents, home
    assert settings().database is None
