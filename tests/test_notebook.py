"""Notebooks: locations in a cell read ``In [3], line 4`` (not ``1177934417.py:4``); a Report
still displays itself (``_repr_*``). IPython is not needed: a stand-in registers the cell as
IPython's compiler does (its file name in ``linecache``, the execution count in
``shell.compile._filename_map``); one test drives a real IPython shell where it is installed."""
from __future__ import annotations

import linecache
import re
import sys
import types

import pytest
import torch

import graphprobe
from graphprobe.locations import cell_number, register_cell, short_location

CELL = "/tmp/ipykernel_4242/1177934417.py"
SOURCE = (
    "torch.manual_seed(0)\n"
    "net1, net2 = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)\n"
    "x = torch.ones(2, 3) * 0.2\n"
    "tmp = torch.from_numpy(net1(x).detach().numpy() * 0.5)\n"
    "loss2 = net2(tmp).sum()\n"
)


@pytest.fixture
def fake_ipython(monkeypatch):
    """A stand-in for IPython with cell 3 compiled under CELL, as ipykernel does it."""
    shell = types.SimpleNamespace(compile=types.SimpleNamespace(_filename_map={CELL: 3}))
    mod = types.ModuleType("IPython")
    mod.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", mod)
    lines = SOURCE.splitlines(keepends=True)
    monkeypatch.setitem(linecache.cache, CELL, (len(SOURCE), None, lines, CELL))
    return shell


def _run_cell(source: str = SOURCE) -> dict:
    ns = {"torch": torch}
    with graphprobe.trace():
        exec(compile(source, CELL, "exec"), ns)
        ns["r"] = graphprobe.probe(ns["loss2"], params={"net1": ns["net1"], "net2": ns["net2"]}, names=["loss2"])
    return ns


def test_a_cut_in_a_cell_is_named_by_the_cell(fake_ipython):
    r = _run_cell()["r"]
    cut = r.cuts[0]
    assert cut["location"] == f"{CELL}:4"  # the JSON keeps the path linecache knows
    assert "numpy cut at In [3], line 4" in r.verdict()
    text = r.to_text()
    (line,) = [t for t in text.splitlines() if "numpy cut at" in t and "[error]" in t]
    assert "numpy cut at In [3], line 4" in line and "1177934417" not in line
    labels = re.findall(r'label="([^"]*)"', r.to_dot())  # what the picture shows (not tooltips)
    assert any("In [3], line 4" in lb for lb in labels) and not any("1177934417" in lb for lb in labels)


def test_the_notebook_displays_stay(fake_ipython):
    r = _run_cell()["r"]
    html = r._repr_html_()
    assert "In [3], line 4" in html and "<svg" in html
    bundle = r._repr_mimebundle_()
    assert {"text/plain", "text/html", "image/svg+xml"} <= set(bundle)
    assert "In [3], line 4" in bundle["text/plain"]
    assert r._repr_svg_().lstrip().startswith("<")


def test_the_bundle_lays_out_once_and_to_graphviz_shows_the_same(fake_ipython, monkeypatch):
    from graphprobe.render import image

    r = _run_cell()["r"]
    formats = []
    real = image.layout
    monkeypatch.setattr(image, "layout", lambda dot, fmt, **k: formats.append(fmt) or real(dot, fmt, **k))
    bundle = r._repr_mimebundle_()
    assert formats == ["svg"]  # the HTML and the SVG entries share one layout
    svg = bundle["image/svg+xml"]
    assert svg[svg.find("<svg"):] in bundle["text/html"]
    # The graphviz.Source of the same report displays the same picture (graphviz's own
    # _repr_mimebundle_, laid out by graphprobe's engine).
    src = r.to_graphviz()
    assert "In [3], line 4" in src.source
    assert src._repr_mimebundle_() == {"image/svg+xml": svg}


def test_ignore_comment_in_a_cell_still_works(fake_ipython, monkeypatch):
    src = SOURCE.replace("* 0.5)\n", "* 0.5)  # graphprobe: ignore\n")
    monkeypatch.setitem(linecache.cache, CELL, (len(src), None, src.splitlines(keepends=True), CELL))
    r = _run_cell(src)["r"]
    assert r.cuts and all(c["ignored"] for c in r.cuts)


def test_a_file_is_still_a_file(fake_ipython):
    assert short_location("/work/cor.py:17") == "cor.py:17"
    assert cell_number("/work/cor.py") is None


def test_without_ipython_a_cell_file_is_a_file(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert short_location(f"{CELL}:4") == "1177934417.py:4"


def test_a_broken_shell_is_no_crash(monkeypatch):
    mod = types.ModuleType("IPython")

    def boom():
        raise RuntimeError("shell torn down")

    mod.get_ipython = boom  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", mod)
    assert short_location(f"{CELL}:4") == "1177934417.py:4"


def test_register_cell_for_other_front_ends(monkeypatch):
    from graphprobe import locations

    monkeypatch.setattr(locations, "_CELLS", {})
    register_cell("/tmp/other/cell7.py", 7)
    assert short_location("/tmp/other/cell7.py:2") == "In [7], line 2"


def test_a_real_ipython_shell():
    IPython = pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell("import torch, graphprobe", store_history=True)
        res = shell.run_cell(SOURCE, store_history=True)
        n = res.execution_count
        res = shell.run_cell("with graphprobe.trace():\n"
                             "    tmp = torch.from_numpy(net1(x).detach().numpy() * 0.5)\n"
                             "    r = graphprobe.probe(net2(tmp).sum(), names=['loss2'])\n", store_history=True)
        assert res.error_in_exec is None, res.error_in_exec
        r = shell.user_ns["r"]
        assert f"numpy cut at In [{n + 1}], line 2" in r.verdict(), r.verdict()
    finally:
        InteractiveShell.clear_instance()
