"""Default pictures of mid-sized graphs fit a screen, tell the story, and are drawn in seconds.

Two programs of our own (tests/programs/): an actor-critic unrolled over 2 episodes of 40 steps
with an ``.item()`` baseline, and a 40-block conv depth net whose output goes through numpy into a
30-layer MLP detector. Their default SVGs must be at most 3,000 pt on each side (4,000 px at 96
dpi), draw at most 250 nodes, label the cut with its file:line, and lay out in seconds. The
view's ids must name the drawn nodes (issue 11's stale-id bug), and a layout engine that runs out
of memory or time must still leave a picture that says it fell back.
"""
from __future__ import annotations

import html
import os
import re
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import graphprobe
from graphprobe.render.collapse import make_view
from graphprobe.render.dot import DotOptions
from graphprobe.render.image import render_view
from graphprobe.run.options import RunOptions
from graphprobe.run.script import run_script

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "tests" / "programs"


def _report(name: str) -> graphprobe.Report:
    old = os.getcwd()
    os.chdir(ROOT)  # relative paths in the report, as the docs pictures have
    try:
        return run_script(RunOptions(f"tests/programs/{name}")).report
    finally:
        os.chdir(old)


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text("utf-8").splitlines(), 1) if text in line)


def _svg_size(svg: str) -> tuple[float, float]:
    m = re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"[^>]*\bheight="([\d.]+)pt"', svg, re.S)
    assert m is not None, svg[:300]
    return float(m.group(1)), float(m.group(2))


def _words(svg: str) -> str:
    """The picture's text, tags out and lines joined (a long title wraps over several)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", svg)))


def _drawn_nodes(svg: str) -> int:
    return len(re.findall(r'<g id="n\d+" class="node"', svg))


@pytest.fixture(scope="module")
def actor_critic() -> graphprobe.Report:
    return _report("actor_critic_episodes.py")


@pytest.fixture(scope="module")
def depth_detector() -> graphprobe.Report:
    return _report("depth_detector.py")


def _default_svg(report: graphprobe.Report) -> tuple[str, float, object]:
    t0 = time.perf_counter()
    view = make_view(report)
    data, drawn = render_view(view, "svg", DotOptions())
    return html.unescape(data.decode("utf-8")), time.perf_counter() - t0, drawn


def test_actor_critic_episodes_default_picture(actor_critic: graphprobe.Report) -> None:
    r = actor_critic
    assert len(r.model) > 1500  # 2 episodes x 40 steps, every step drawn would be unreadable
    svg, took, view = _default_svg(r)
    w, h = _svg_size(svg)
    assert w <= 3000 and h <= 3000, (w, h)
    assert 10 <= _drawn_nodes(svg) <= 250
    assert took < 20, f"the default picture took {took:.1f} s"
    # The .item() cut is drawn and labelled with its line; the 80 steps fold into one block.
    line = _line_of(PROGRAMS / "actor_critic_episodes.py", "advantage = g - v.item()")
    assert f"actor_critic_episodes.py:{line}" in svg and "no gradient flows back" in svg
    assert re.search(r"policy\.action_head ×80 calls", svg), "the 80 steps should fold into one block"


def test_depth_detector_default_picture(depth_detector: graphprobe.Report) -> None:
    r = depth_detector
    assert 700 < len(r.model)
    svg, took, view = _default_svg(r)
    w, h = _svg_size(svg)
    assert w <= 3000 and h <= 3000, (w, h)
    assert 10 <= _drawn_nodes(svg) <= 250
    assert took < 20, f"the default picture took {took:.1f} s"
    line = _line_of(PROGRAMS / "depth_detector.py", "d = depth.detach().numpy()")
    assert f"depth_detector.py:{line}" in svg and "from_numpy" in svg
    assert "depth_net.blocks.0-39 ×40" in svg and "detector.layers.0-29 ×30" in svg
    # The cut edge goes from the depth head's conv into the detector's first op.
    g = view.report.model
    (s, d, c), = g.cut_edges
    assert g.module[s] == "depth_net.head" and (g.module[d] or "").startswith("detector")
    assert f'id="cut{c}"' in svg


def test_png_is_at_most_4000_px(depth_detector: graphprobe.Report, tmp_path: Path) -> None:
    out = tmp_path / "d.png"
    depth_detector.to_png(str(out))
    head = out.read_bytes()[:24]
    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert max(w, h) <= 4000 and min(w, h) > 300, (w, h)


def test_every_id_names_the_drawn_node(depth_detector: graphprobe.Report) -> None:
    """After folding, losses, params, cuts, findings and opaque regions point at drawn nodes."""
    r = depth_detector
    view = make_view(r)
    v, g = view.report, view.report.model
    assert view.collapsed and len(g) < len(r.model)
    for loss in v.losses:
        assert g.kind[loss["node"]] == "loss" and g.label[loss["node"]] == loss["name"]
    for p in v.params:
        node = p["node"]
        if g.kind[node] == "param":
            assert g.label[node] == p["name"]
        else:  # folded: the group that holds it, and it is one of the group's members
            assert g.kind[node] == "module"
            assert any(r.model.label[m] == p["name"] for m in view.members[node])
    for c in v.cuts:
        for end in (c["from"], c["to"]):
            assert 0 <= end["node"] < len(g)
    for i, old in enumerate(r.model.kind):
        assert 0 <= view.new_id[i] < len(g)


def _two_module_net() -> graphprobe.Report:
    torch.manual_seed(0)
    enc = nn.Sequential(*[nn.Linear(4, 4) for _ in range(6)])
    dec = nn.Sequential(*[nn.Linear(4, 4) for _ in range(6)])
    x = torch.randn(2, 4)
    loss = dec(enc(x)).pow(2).mean()
    return graphprobe.probe(loss, params={"enc": enc, "dec": dec})


def test_collapse_remaps_params_losses_and_findings() -> None:
    """Issue 11: dec's bias used to point at the "enc" group after collapsing."""
    r = _two_module_net()
    view = make_view(r, depth=1)
    g = view.report.model
    labels = [label.split("\n")[0] for label in g.label]
    assert labels.count("enc") == 1 and labels.count("dec") == 1
    for p in view.report.params:
        top = p["name"].split(".")[0]
        assert labels[p["node"]] == top, (p["name"], labels[p["node"]])
    assert g.kind[view.report.losses[0]["node"]] == "loss"
    # The JSON the HTML page embeds is the view's: its ids are the SVG's.
    data = view.report.to_dict()
    assert len(data["nodes"]) == len(g)
    assert {p["node"] for p in data["params"]} <= set(range(len(g)))


def test_expand_and_depth_open_the_view(depth_detector: graphprobe.Report) -> None:
    base = len(make_view(depth_detector).report.model)
    opened = make_view(depth_detector, expand=("detector",))
    assert len(opened.report.model) > base
    assert any(k == "param" and (m or "").startswith("detector.layers.") for k, m in
               zip(opened.report.model.kind, opened.report.model.module))
    deeper = make_view(depth_detector, depth=4)
    assert any("›" in label for label in deeper.report.model.label)  # a folded block in parts
    assert len(make_view(depth_detector, budget=100_000).report.model) == len(depth_detector.model)


_FAKE_ENGINE = textwrap.dedent("""\
    #!{python}
    # Lays out small graphs with the real engine; on a big one, allocates until its limit stops it.
    import subprocess, sys
    src = sys.stdin.buffer.read()
    if src.count(b"\\n") > {lines}:
        hog = []
        while True:
            hog.append(bytearray(64 * 2**20))
    sys.exit(subprocess.run([{real!r}, "-Kdot"] + sys.argv[1:], input=src).returncode)
    """)


def _pure() -> str:
    from graphprobe.render.engine import find_engine

    old = os.environ.pop("GRAPHPROBE_DOT", None)
    try:
        return find_engine()[0]
    finally:
        if old is not None:
            os.environ["GRAPHPROBE_DOT"] = old


def test_engine_out_of_memory_falls_back(depth_detector: graphprobe.Report, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    engine = tmp_path / "hungry-dot"
    engine.write_text(_FAKE_ENGINE.format(python=sys.executable, lines=400, real=_pure()))
    engine.chmod(0o755)
    monkeypatch.setenv("GRAPHPROBE_DOT", str(engine))
    monkeypatch.setenv("GRAPHPROBE_LAYOUT_MEMORY", "600")
    view = make_view(depth_detector, budget=100_000)  # every node: over 400 DOT lines
    data, drawn = render_view(view, "svg", DotOptions(budget=100_000))
    svg = _words(data.decode("utf-8"))
    assert "fell back" in svg and "ran out of memory" in svg
    assert len(drawn.report.model) < len(view.report.model) and data.startswith(b"<?xml")


def test_engine_that_always_fails_still_leaves_a_card(depth_detector: graphprobe.Report,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    engine = tmp_path / "picky-dot"
    engine.write_text(_FAKE_ENGINE.format(python=sys.executable, lines=8, real=_pure()))
    engine.chmod(0o755)
    monkeypatch.setenv("GRAPHPROBE_DOT", str(engine))
    monkeypatch.setenv("GRAPHPROBE_LAYOUT_MEMORY", "600")
    svg = _words(depth_detector.to_svg())
    assert "fell back" in svg and "no graph drawn" in svg


@pytest.mark.slow
def test_gru_2000_steps_full_budget_under_6gb_still_writes_a_picture(tmp_path: Path) -> None:
    """32k nodes drawn whole: the engine runs out of time (or of memory) and graphprobe falls back."""
    out = tmp_path / "gru.svg"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))

    env = dict(os.environ, GRAPHPROBE_LAYOUT_TIMEOUT="20", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "graphprobe", "render", "samples/gru_unrolled.py",
                           "--budget", "100000", "-o", str(out), "--", "2000"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=limit)
    assert done.returncode == 0, done.stderr
    assert "fell back" in done.stderr, done.stderr
    svg = _words(out.read_text("utf-8"))
    assert "fell back" in svg and "cell" in svg


def test_ops_carry_their_output_shape_and_forward_line(depth_detector: graphprobe.Report) -> None:
    """Under the recorder, an op node knows its output's shape and the line that made it."""
    g = depth_detector.model
    head = [v for v in range(len(g)) if g.module[v] == "depth_net.head" and g.kind[v] == "op"]
    assert len(head) == 1
    (v,) = head
    assert g.meta[v].shape == (1, 1, 8, 8)
    line = _line_of(PROGRAMS / "depth_detector.py", "return self.head(self.blocks(self.stem(img)))")
    assert g.location[v].replace("\\", "/").endswith(f"tests/programs/depth_detector.py:{line}")
    # A Linear inside the detector's loop: the loop's line, and the (64 points, 16) output.
    layer = next(v for v in range(len(g)) if g.module[v] == "detector.layers.3" and g.label[v] == "AddmmBackward0")
    assert g.meta[layer].shape == (64, 16)
    assert g.location[layer].endswith(f":{_line_of(PROGRAMS / 'depth_detector.py', 'h = torch.relu(layer(h))')}")


@pytest.mark.slow
def test_html_page_size_follows_what_is_drawn_not_the_graph(tmp_path: Path) -> None:
    """A GRU of 500 and of 5,000 steps draw the same folded view: their pages are about the
    same size (the 20,000-step page used to embed every node: 79 MB)."""
    from graphprobe.cli import main

    sizes = {}
    for steps in (500, 5000):
        out = tmp_path / f"gru{steps}.html"
        old = os.getcwd()
        os.chdir(ROOT)
        try:
            assert main(["render", "samples/gru_unrolled.py", "-o", str(out), "-q", "--", str(steps)]) == 0
        finally:
            os.chdir(old)
        sizes[steps] = out.stat().st_size
    assert sizes[5000] < 400_000 and sizes[5000] < sizes[500] * 1.5, sizes
