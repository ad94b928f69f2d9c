"""The pictures in docs/ are up to date: ``python docs/regenerate.py --check``, in-process.

When this fails, run ``python docs/regenerate.py`` and commit the pictures it changes (a change
to the renderer, the recorder, a sample, or the torch / graphviz-pure / transformers version
changes them legitimately).
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _regenerate():
    spec = importlib.util.spec_from_file_location("docs_regenerate", ROOT / "docs" / "regenerate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_pictures_are_up_to_date() -> None:
    problems = _regenerate().check()
    assert not problems, ("docs pictures out of date; run `python docs/regenerate.py` and commit:\n  "
                          + "\n  ".join(problems))


def test_every_sample_has_a_picture_or_a_reason() -> None:
    regen = _regenerate()
    drawn = {Path(script).name for script, _, _ in regen.targets()}
    for script in (ROOT / "samples").glob("*.py"):
        assert script.name in drawn or script.name in regen.SKIP, script.name
    assert ("samples/case4_numpy.py", "docs/case4.svg", []) in regen.targets()


def test_readme_pictures_exist_and_are_regenerated() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = set(re.findall(r"(docs/[\w/.-]+\.svg)", readme))
    assert "docs/case4.svg" in pictures
    outputs = {output for _, output, _ in _regenerate().targets()}
    for pic in sorted(pictures):
        assert (ROOT / pic).is_file(), pic
        assert pic in outputs, f"{pic} is in README.md but docs/regenerate.py does not make it"


def test_pictures_hold_no_machine_specific_text() -> None:
    """Relative paths only: the bytes must not depend on the checkout folder or the machine."""
    here = str(ROOT)
    for pic in sorted((ROOT / "docs").rglob("*.svg")):
        text = pic.read_text(encoding="utf-8")
        for bad in (here, "site-packages", "/home/", "/tmp/", "\\Users\\", "0x7f"):
            assert bad not in text, f"{pic.relative_to(ROOT)} contains {bad!r}"
