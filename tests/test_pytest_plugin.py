"""pytest: a failing ``assert_grad_flow`` reads like a pytest assertion (``__tracebackhide__``),
and the plugin's ``grad_flow`` fixture and ``--graphprobe-report DIR`` option."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

INNER = '''
import torch
import graphprobe


def _nets():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)


def test_cut_direct():
    enc, head = _nets()
    with graphprobe.trace():
        h = torch.from_numpy(enc(torch.ones(2, 3)).detach().numpy())
        loss = head(h).pow(2).mean()
        graphprobe.assert_grad_flow(loss, enc, head)


def test_cut_fixture(grad_flow):
    enc, head = _nets()
    h = torch.from_numpy(enc(torch.ones(2, 3)).detach().numpy())
    loss = head(h).pow(2).mean()
    grad_flow.check(loss, enc, head)


def test_fine_fixture(grad_flow):
    enc, head = _nets()
    loss = head(enc(torch.ones(2, 3))).pow(2).mean()
    grad_flow.check(loss, enc, head)
    r = grad_flow.probe(loss)
    assert r.ok and set(r.reaches["loss"]) == {"enc.weight", "enc.bias", "head.weight", "head.bias"}


def test_fails_elsewhere(grad_flow):
    assert 1 == 2
'''


@pytest.fixture
def inner(pytester):
    pytester.makepyfile(test_inner=INNER)
    return pytester


def _run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "graphprobe.pytest_plugin", "-p", "no:cacheprovider", *args)


def _cut_lines(pytester) -> list[int]:
    text = (pytester.path / "test_inner.py").read_text().splitlines()
    return [i for i, line in enumerate(text, 1) if ".numpy())" in line]


def test_failing_assert_grad_flow_is_at_most_40_lines(inner):
    res = _run(inner, "--tb=long", "-k", "test_cut_direct")
    res.assert_outcomes(failed=1)
    out = res.outlines
    assert len(out) <= 40, "\n".join(out)
    text = "\n".join(out)
    assert "E           AssertionError: gradient does not reach 2 parameters:" in text
    line = _cut_lines(inner)[0]
    assert f"enc.weight: cut at test_inner.py:{line} (detach -> numpy -> from_numpy)" in text
    assert "def assert_grad_flow" not in text and "assertions.py" not in text


def test_fixture_check_probe_and_one_picture_per_failing_check(inner):
    res = _run(inner, "--tb=long", "--graphprobe-report", "pics")
    res.assert_outcomes(failed=3, passed=1)
    text = "\n".join(res.outlines)
    # The fixture's failure reads as the direct one does, named as the test names things.
    section = text.split("_ test_cut_fixture _")[1].split("_ test_fails_elsewhere _")[0]
    assert len(section.splitlines()) <= 20, section
    assert f"enc.weight: cut at test_inner.py:{_cut_lines(inner)[1]}" in section
    assert "head.weight" not in section
    assert "pytest_plugin.py" not in section and "_call_with_names_of" not in section
    # One picture: the failing check's. Not the passing test's, nor the plain assert's.
    pics = inner.path / "pics"
    assert sorted(os.listdir(pics)) == ["test_inner.py__test_cut_fixture.svg"]
    svg = (pics / "test_inner.py__test_cut_fixture.svg").read_text()
    assert "<svg" in svg and "enc.weight" in svg
    res.stdout.fnmatch_lines(["*the graph of the failing check: pics/test_inner.py__test_cut_fixture.svg*"])


def test_without_the_option_nothing_is_written_and_no_trace_stays(inner):
    from graphprobe.record.recorder import active_trace

    res = _run(inner, "-k", "fixture")
    res.assert_outcomes(failed=1, passed=1)
    assert sorted(p.name for p in inner.path.iterdir()) == ["test_inner.py"]
    assert active_trace() is None


def test_loading_the_plugin_imports_no_torch():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import sys, graphprobe.pytest_plugin; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_the_entry_point_is_declared():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["pytest11"] == {"graphprobe.pytest_plugin": "graphprobe.pytest_plugin"}
