"""The graphviz Python package: ``Report.to_graphviz`` (a ``graphviz.Source`` of the report's DOT,
displayed in notebooks, piped through graphprobe's bounded engine), graphviz's own pipe and render
with a ``dot`` on ``PATH``, and our DOT quoting checked against ``graphviz.quoting``.

No system Graphviz is needed: graphviz-pure takes ``dot``'s flags, so a ``dot`` link to it on
``PATH`` is a ``dot`` as far as the graphviz package can tell; a real system ``dot`` is used too
where one is installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import graphviz
import pytest
import torch
from graphviz.quoting import escape as gv_escape
from graphviz.quoting import quote as gv_quote
from hypothesis import given
from hypothesis import strategies as st

import graphprobe
from graphprobe.errors import LayoutEngineMissing, LayoutTimeout
from graphprobe.render import engine as engine_mod
from graphprobe.render.dot import quote
from graphprobe.render.engine import LayoutOutOfMemory, find_engine, layout
from graphprobe.render.gv import BoundedSource, to_source

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report() -> graphprobe.Report:
    """Two nets, a numpy cut between them: clusters, a red cut edge, a legend."""
    torch.manual_seed(0)
    net1, net2 = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    with graphprobe.trace():
        tmp = torch.from_numpy(net1(torch.ones(2, 3)).detach().numpy() * 0.5)
        loss2 = net2(tmp).sum()
        return graphprobe.probe(loss2, params={"net1": net1, "net2": net2}, names=["loss2"])


def _graphviz_pure() -> str:
    """The graphviz-pure command (a dependency of graphprobe), wherever find_engine finds it."""
    old = os.environ.pop(engine_mod.ENGINE_ENV, None)
    try:
        cmd = find_engine()
    finally:
        if old is not None:
            os.environ[engine_mod.ENGINE_ENV] = old
    return shutil.which("graphviz-pure") or (cmd[0] if "graphviz-pure" in cmd[0] else
                                              str(Path(sys.executable).parent / "graphviz-pure"))


@pytest.fixture
def no_system_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``dot`` anywhere on ``PATH``: the pip-only install."""
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture(params=["graphviz-pure as dot", "system dot"])
def dot_on_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> str:
    """A ``dot`` on ``PATH``: graphviz-pure linked as ``dot``, or Graphviz's own where installed."""
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    if request.param == "system dot":
        real = shutil.which("dot")
        if real is None:
            pytest.skip("no system Graphviz `dot` on PATH (the graphviz-pure case runs instead)")
        return real
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").symlink_to(_graphviz_pure())
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    return str(bin_dir / "dot")


# -- to_graphviz ----------------------------------------------------------------------------------
def test_to_graphviz_is_a_source_of_exactly_the_dot(report: graphprobe.Report) -> None:
    src = report.to_graphviz()
    assert isinstance(src, graphviz.Source)
    assert src.source == report.to_dot()
    assert (src.format, src.engine) == ("svg", "dot")  # a plain Source says pdf: pure has none
    opts = {"title": "two nets", "rankdir": "LR", "depth": 1, "legend": False}
    assert report.to_graphviz(**opts).source == report.to_dot(**opts) != src.source


def test_its_pipe_and_display_are_the_reports_picture(report: graphprobe.Report) -> None:
    src = report.to_graphviz()
    svg = report.to_svg()
    assert src.pipe(encoding="utf-8") == svg
    assert src.pipe() == svg.encode("utf-8")
    # What Jupyter shows: graphviz's own _repr_mimebundle_, built on the pipe above.
    assert src._repr_mimebundle_() == {"image/svg+xml": svg}
    png = src._repr_mimebundle_(include=["image/png"])["image/png"]
    assert png.startswith(PNG_MAGIC)
    assert src.pipe(format="svg", renderer="svg", formatter="core") == svg.encode("utf-8")


def test_it_displays_without_a_system_graphviz(report: graphprobe.Report,
                                               no_system_dot: None) -> None:
    assert shutil.which("dot") is None
    src = report.to_graphviz()
    assert "graphviz-pure" in Path(find_engine()[0]).name
    assert "net1.weight" in src._repr_mimebundle_()["image/svg+xml"]
    # graphviz's own pipe needs the dot command, which is the point of ours.
    with pytest.raises(graphviz.ExecutableNotFound):
        graphviz.Source(src.source).pipe(format="svg")


def test_other_layout_algorithms_go_through_the_engine(report: graphprobe.Report) -> None:
    dot_plain = report.to_graphviz().pipe(format="plain", encoding="utf-8")
    neato = report.to_graphviz()
    neato.engine = "neato"
    neato_plain = neato.pipe(format="plain", encoding="utf-8")
    assert neato_plain.startswith("graph ") and neato_plain != dot_plain
    assert report.to_graphviz().pipe(format="plain", engine="neato", encoding="utf-8") == neato_plain


def test_bad_names_are_refused_before_any_engine_runs(report: graphprobe.Report,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def no_engine() -> list[str]:
        raise AssertionError("no engine should start")

    monkeypatch.setattr(engine_mod, "find_engine", no_engine)
    src = report.to_graphviz()
    for kwargs in ({"format": "nope"}, {"engine": "bogus"}, {"renderer": "nope"},
                   {"format": "svg; rm -rf /"}):
        with pytest.raises(ValueError, match="unknown"):
            src.pipe(**kwargs)
    with pytest.raises(graphviz.RequiredArgumentError):
        src.pipe(formatter="core")


def test_a_copy_keeps_its_bound(report: graphprobe.Report) -> None:
    src = to_source(report.to_dot(), timeout=7.5)
    copy = src.copy()
    assert isinstance(copy, BoundedSource) and copy.timeout == 7.5 and copy.source == src.source


# -- the bounds hold for the Source too -----------------------------------------------------------
_FAKE_ENGINE = textwrap.dedent("""\
    #!{python}
    # Lays out graphs of a few lines with the real engine; a bigger one, after reading it,
    # allocates until its address-space limit stops it (or, with no limit, gives up at 1 GB
    # with an error that is not about memory, rather than take the machine's).
    import subprocess, sys
    src = sys.stdin.buffer.read()
    if src.count(b"\\n") > {lines}:
        hog = []
        while len(hog) < 16:
            hog.append(bytearray(64 * 2**20))
        sys.exit("allocated 1 GB: no limit stopped it")
    sys.exit(subprocess.run([{real!r}, "-Kdot"] + sys.argv[1:], input=src).returncode)
    """)


@pytest.mark.skipif(os.name != "posix", reason="uses scripts as fake engines")
def test_the_source_pipe_keeps_the_time_and_memory_bounds(report: graphprobe.Report,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    slow = tmp_path / "slowdot"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setenv(engine_mod.ENGINE_ENV, str(slow))
    with pytest.raises(LayoutTimeout, match="too long"):
        to_source(report.to_dot(), timeout=0.3).pipe()
    monkeypatch.setenv("GRAPHPROBE_LAYOUT_TIMEOUT", "0.2")  # the variable wins, as for pictures
    with pytest.raises(LayoutTimeout, match="0.2 s"):
        report.to_graphviz().pipe()
    monkeypatch.delenv("GRAPHPROBE_LAYOUT_TIMEOUT")

    hungry = tmp_path / "hungry-dot"
    hungry.write_text(_FAKE_ENGINE.format(python=sys.executable, lines=8, real=_graphviz_pure()))
    hungry.chmod(0o755)
    monkeypatch.setenv(engine_mod.ENGINE_ENV, str(hungry))
    monkeypatch.setenv(engine_mod.MEMORY_ENV, "200")
    assert report.to_dot().count("\n") > 8
    with pytest.raises(LayoutOutOfMemory, match="0.2 GB"):
        report.to_graphviz().pipe()
    # The Source draws its DOT or fails; the Report's own display falls back to a card instead.
    svg = report._repr_svg_()
    assert svg is not None and "fell back" in svg and "ran out of memory" in svg


def test_no_engine_at_all_says_so(report: graphprobe.Report, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Path) -> None:
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(LayoutEngineMissing, match="graphviz-pure"):
        report.to_graphviz().pipe()


# -- graphviz's own pipe and render, with a dot on PATH -------------------------------------------
def test_graphviz_pipe_and_render_with_a_dot_on_path(report: graphprobe.Report, dot_on_path: str,
                                                     tmp_path: Path) -> None:
    assert find_engine() == [shutil.which("dot")]
    ours = layout(report.to_dot(), "svg")
    # graphviz's own pipe (unbounded) and ours give the same bytes with the same dot.
    assert graphviz.pipe("dot", "svg", report.to_dot().encode("utf-8"), quiet=True) == ours
    assert graphviz.Source(report.to_dot()).pipe(format="svg", quiet=True) == ours
    assert report.to_graphviz().pipe() == ours
    out = report.to_graphviz().render(outfile=tmp_path / "g.svg", quiet=True)
    assert Path(out).read_bytes() == ours
    assert (tmp_path / "g.gv").read_text("utf-8") == report.to_dot()  # graphviz saves the source
    placed = 'digraph { a [pos="0,0!"]; b [pos="72,72!"]; a -> b }'
    assert (BoundedSource(placed).pipe(format="plain", engine="neato", neato_no_op=1)
            == graphviz.Source(placed).pipe(format="plain", engine="neato", neato_no_op=1))


def test_neato_no_op_keeps_the_given_positions(no_system_dot: None) -> None:
    placed = BoundedSource('digraph { a [pos="0,0!"]; b [pos="72,72!"]; a -> b }', format="plain")
    text = placed.pipe(engine="neato", neato_no_op=1, encoding="utf-8")
    # b stays 72 pt (an inch) right of and above a: the positions were kept, not laid out.
    assert "node a 0.375 0.25 " in text and "node b 1.375 1.25 " in text
    # Without -n, neato reads pos in inches: b lands 72 inches away.
    assert "node b 72.375 72.25 " in placed.pipe(engine="neato", encoding="utf-8")


# -- quoting --------------------------------------------------------------------------------------
def _graphviz_quoted(text: str) -> str:
    """graphviz's own quoting for a literal string, always in double quotes as ours is: it leaves
    a plain ID (``AddmmBackward0``, ``15``) bare, which DOT reads as the same string."""
    q = gv_quote(gv_escape(text))
    return q if q.startswith('"') else f'"{q}"'


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs"))))
def test_our_quoting_agrees_with_graphviz_quoting(text: str) -> None:
    """Backslashes, quotes, ``<...>`` (never an HTML label), keywords: the same escapes."""
    assert quote(text) == _graphviz_quoted(text)


@given(st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs"))), min_size=2))
def test_with_line_breaks_ours_writes_the_escape(lines: list[str]) -> None:
    """graphviz leaves a raw newline inside the quotes; ours writes ``\\n`` (the centred line
    break), so one DOT statement stays on one line."""
    text = "\n".join(lines)
    assert quote(text) == _graphviz_quoted(text).replace("\n", "\\n")
    assert "\n" not in quote(text)


def test_the_cases_that_differ_from_bare_graphviz_quote() -> None:
    # graphviz.quote alone reads <lambda> as an HTML label and leaves \\N to expand to the node
    # name; escape() turns both off, and that is what ours does.
    assert gv_quote("<lambda>") == "<lambda>" and quote("<lambda>") == '"<lambda>"'
    assert quote("a\\Nb") == '"a\\\\Nb"' == _graphviz_quoted("a\\Nb")
    assert quote("x\r\ny\tz") == '"x\\ny z"'  # control characters: a line break, a space


# -- startup --------------------------------------------------------------------------------------
def test_importing_graphprobe_does_not_import_graphviz() -> None:
    code = ("import sys, graphprobe, graphprobe.report, graphprobe.render, graphprobe.render.image; "
            "print('graphviz' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    assert done.stdout.strip() == "False"
