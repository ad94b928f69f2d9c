"""Tests for the DOT renderer and the layout engine: clusters, cuts, determinism, engines, files."""
from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from graphprobe.errors import GraphprobeError, LayoutEngineMissing, OutputError
from graphprobe.model.graph import ProbeGraph, TensorMeta
from graphprobe.io import write_atomic
from graphprobe.render import DotOptions, find_engine, layout, quote, to_dot
from graphprobe.render import engine as engine_mod
from graphprobe.report import Report

__all__: list[str] = []

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHAIN = "detach → numpy → × 0.5 → from_numpy"


def _case4(unreached: bool = False, frozen: bool = False) -> tuple[Report, dict[str, int]]:
    """The seed's case 4 built by hand: net1 -> loss1, a numpy cut into net2 -> loss2."""
    g = ProbeGraph()
    ids: dict[str, int] = {}

    def node(key: str, kind: str, label: str, op: str | None = None, module: str | None = None,
             name: str | None = None, shape: tuple[int, ...] | None = None) -> int:
        v = g.add_node(kind, label, op, module, name)
        if shape is not None:
            g.meta[v] = TensorMeta(shape, "float32", "cpu")
        ids[key] = v
        return v

    node("loss1", "loss", "loss1", name="loss1", shape=())
    node("mse1", "op", "MseLossBackward0", "MseLossBackward0")
    node("add1", "op", "AddmmBackward0", "AddmmBackward0", "net1", "tmp")
    node("b1", "param", "net1.bias", "AccumulateGrad", "net1", "net1.bias", (3,))
    node("t1", "op", "TBackward0", "TBackward0", "net1")
    node("w1", "param", "net1.weight", "AccumulateGrad", "net1", "net1.weight", (3, 3))
    node("loss2", "loss", "loss2", name="loss2", shape=())
    node("mse2", "op", "MseLossBackward0", "MseLossBackward0")
    node("add2", "op", "AddmmBackward0", "AddmmBackward0", "net2")
    node("b2", "param", "net2.bias", "AccumulateGrad", "net2", "net2.bias", (3,))
    node("leaf", "reentry_leaf", "leaf (requires_grad)", "AccumulateGrad", shape=(2, 3))
    node("t2", "op", "TBackward0", "TBackward0", "net2")
    node("w2", "param", "net2.weight", "AccumulateGrad", "net2", "net2.weight", (3, 3))
    for s, d in (("mse1", "loss1"), ("add1", "mse1"), ("b1", "add1"), ("t1", "add1"), ("w1", "t1"),
                 ("mse2", "loss2"), ("add2", "mse2"), ("b2", "add2"), ("leaf", "add2"),
                 ("t2", "add2"), ("w2", "t2")):
        g.add_edge(ids[s], ids[d])
    g.losses += [ids["loss1"], ids["loss2"]]
    for p, o in (("w1", "opt1"), ("b1", "opt1"), ("w2", "opt2"), ("b2", "opt2")):
        g.optimizers[ids[p]] = [o]
    g.cut_edges.append((ids["add1"], ids["add2"], 0))
    if frozen:
        node("scale", "param", "net1.scale", "AccumulateGrad", "net1", "net1.scale", (3,))
        g.frozen.add(ids["scale"])
    r = Report(g)
    r.losses = [{"name": "loss1", "location": "cor.py:20", "node": ids["loss1"]},
                {"name": "loss2", "location": "cor.py:21", "node": ids["loss2"]}]
    r.components = [{"losses": ["loss1"], "params": ["net1.weight", "net1.bias"]},
                    {"losses": ["loss2"], "params": ["net2.weight", "net2.bias"]}]
    r.reaches = {"loss1": ["net1.bias", "net1.weight"], "loss2": ["net2.bias", "net2.weight"]}
    r.cuts = [{
        "kind": "numpy",
        "chain": [{"op": op, "location": "cor.py:17"} for op in CHAIN.split(" → ")],
        "location": "cor.py:17", "reentry_location": "cor.py:17",
        "from": {"node": ids["add1"], "op": "AddmmBackward0", "module": "net1"},
        "to": {"node": ids["add2"], "op": "AddmmBackward0", "module": "net2"},
        "blocked": [{"loss": "loss2", "params": ["net1.bias", "net1.weight"]}],
        "severity": "error", "guess": False, "ignored": False,
        "reason": "tmp left autograd through numpy", "fix": "keep tmp a tensor",
    }]
    r.detached = [{"name": "tmp", "kind": "reentry_leaf", "severity": "warning", "optimizers": [],
                   "reason": "a leaf that requires grad but belongs to no module", "fix": "",
                   "node": ids["leaf"]}]
    if unreached:
        r.detached += [{"name": n, "kind": "unreached", "severity": "error", "optimizers": ["opt1"],
                        "reason": "no loss reaches it", "fix": "", "node": ids[k]}
                       for n, k in (("net1.weight", "w1"), ("net1.bias", "b1"))]
    if frozen:
        r.frozen = [{"name": "net1.scale", "module": "net1", "node": ids["scale"]}]
    return r, ids


def _node_stmt(dot: str, v: int) -> str:
    m = re.search(rf"^\s*n{v} \[.*\];$", dot, re.M)
    assert m is not None, f"no statement for n{v}"
    return m.group(0)


def _edge_stmt(dot: str, s: int, d: int) -> str:
    m = re.search(rf"^\s*n{s} -> n{d}( \[.*\])?;$", dot, re.M)
    assert m is not None, f"no edge n{s} -> n{d}"
    return m.group(0)


def _cluster_block(dot: str, label: str) -> str:
    """The text of the cluster labelled ``label`` up to its first closing brace line."""
    m = re.search(r"subgraph (cluster_\w+) \{\n\s*graph \[label=" + re.escape(quote(label)), dot)
    assert m is not None, f"no cluster labelled {label}"
    start = m.start()
    indent = start - dot.rfind("\n", 0, start) - 1
    return dot[start:dot.index("\n" + " " * indent + "}", start)]


@pytest.fixture
def no_system_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide Graphviz's ``dot`` and empty ``PATH``: only ``graphviz-pure`` beside the interpreter."""
    real_which = shutil.which
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(shutil, "which",
                        lambda cmd, *a, **k: None if cmd == "dot" else real_which(cmd, *a, **k))


def _has_pure() -> bool:
    here = Path(sys.executable).parent
    return shutil.which("graphviz-pure") is not None or (here / "graphviz-pure").exists()


def needs_engine(f):  # graphviz-pure is a dependency: an engine must be there, so no skip
    return f


# -- DOT text -------------------------------------------------------------------------------------
def test_clusters_per_module_hold_their_nodes() -> None:
    r, ids = _case4()
    dot = to_dot(r)
    net1, net2 = _cluster_block(dot, "net1"), _cluster_block(dot, "net2")
    for k in ("w1", "b1", "t1", "add1"):
        assert f"n{ids[k]} [" in net1 and f"n{ids[k]} [" not in net2
    for k in ("w2", "b2", "t2", "add2"):
        assert f"n{ids[k]} [" in net2 and f"n{ids[k]} [" not in net1
    # Losses are outside every module box, at the bottom.
    assert f"n{ids['loss1']} [" not in net1 + net2
    # ... in the order given, left to right (an invisible edge along the bottom row).
    assert re.search(rf"\{{ rank=sink; n{ids['loss1']}; n{ids['loss2']}; "
                     rf"n{ids['loss1']} -> n{ids['loss2']} \[style=\"invis\"\]; \}}", dot)


def test_nested_module_paths_nest_clusters() -> None:
    g = ProbeGraph()
    a = g.add_node("param", "model.coarse.weight", None, "model.coarse")
    b = g.add_node("op", "AddBackward0", "AddBackward0", "model")
    c = g.add_node("param", "enc.layers.0.attn.w", None, "enc.layers.0.attn")
    loss = g.add_node("loss", "loss")
    g.add_edge(a, b)
    g.add_edge(b, loss)
    g.add_edge(c, loss)
    g.losses.append(loss)
    dot = to_dot(Report(g))
    model = _cluster_block(dot, "model")
    assert quote("model.coarse") in model and f"n{a} [" in model and f"n{b} [" in model
    # A chain of empty prefixes is folded into one box named by the full path.
    assert quote("enc.layers.0.attn") in dot
    for empty in ("enc", "enc.layers", "enc.layers.0"):
        assert f"label={quote(empty)}," not in dot
    assert dot.count("{") == dot.count("}")


def test_cut_edge_is_red_dashed_thick_with_chain_and_location() -> None:
    r, ids = _case4()
    dot = to_dot(r)
    # The drawn cut ends at the rebuilt leaf that feeds add2, not at add2 itself.
    stmt = _edge_stmt(dot, ids["add1"], ids["leaf"])
    assert not re.search(rf"^\s*n{ids['add1']} -> n{ids['add2']}\b", dot, re.M)
    assert 'color="#d62728"' in stmt and 'style="dashed"' in stmt
    pen = re.search(r'penwidth="([\d.]+)"', stmt)
    assert pen is not None and float(pen.group(1)) >= 2.5
    assert f'label="{CHAIN}\\ncor.py:17\\nno gradient flows back"' in stmt


def test_info_and_ignored_cuts_are_calmer() -> None:
    r, ids = _case4()
    g = r.model
    g.cut_edges += [(ids["t1"], ids["t2"], 1), (ids["b1"], ids["b2"], 2)]
    r.cuts.append({"kind": "item", "chain": [{"op": "item", "location": "a.py:3"}],
                   "location": "a.py:3", "severity": "info", "ignored": False})
    r.cuts.append({"kind": "numpy", "chain": [{"op": "numpy", "location": "b.py:9"}],
                   "location": "b.py:9", "severity": "error", "ignored": True})
    dot = to_dot(r)
    info = _edge_stmt(dot, ids["t1"], ids["t2"])
    ignored = _edge_stmt(dot, ids["b1"], ids["b2"])
    assert "#d62728" not in info and 'style="dashed"' in info
    assert "#d62728" not in ignored and 'penwidth="1"' in ignored and "(ignored)" in ignored
    legend = _cluster_block(dot, "legend")
    assert "cut (info only)" in legend and "cut (ignored)" in legend


def test_findings_are_marked_on_their_nodes() -> None:
    r, ids = _case4(unreached=True, frozen=True)
    r.model.freed.add(ids["mse1"])
    r.shared = [{"losses": ["loss1", "loss2"], "params": [], "nodes": [ids["t2"]]}]
    dot = to_dot(r)
    w1 = _node_stmt(dot, ids["w1"])
    assert "no gradient" in w1 and "held by opt1" in w1 and "dashed" in w1 and "#d62728" in w1
    assert "net1.weight\\n3×3" in w1
    leaf = _node_stmt(dot, ids["leaf"])
    assert "leaf rebuilt outside autograd" in leaf and "tmp\\n2×3" in leaf
    freed = _node_stmt(dot, ids["mse1"])
    assert "freed" in freed and "#e4e4e4" in freed
    frozen = _node_stmt(dot, ids["scale"])
    assert "frozen" in frozen and "dotted" in frozen
    shared = _node_stmt(dot, ids["t2"])
    assert "#e7ddf6" in shared and "shared by loss1, loss2" in shared
    op = _node_stmt(dot, ids["add1"])
    assert "AddmmBackward0\\n= tmp" in op
    legend = _cluster_block(dot, "legend")
    for text in ("no gradient", "leaf rebuilt outside autograd", "freed", "frozen",
                 "shared by loss1 + loss2", "cut: data left autograd here"):
        assert text in legend


def test_legend_lists_only_what_the_picture_uses() -> None:
    g = ProbeGraph()
    w = g.add_node("param", "w", None, "m")
    loss = g.add_node("loss", "loss")
    g.add_edge(w, loss)
    g.losses.append(loss)
    legend = _cluster_block(to_dot(Report(g)), "legend")
    assert "parameter" in legend and "loss" in legend
    for absent in ("cut", "freed", "frozen", "no gradient", "shared", "rebuilt", "input leaf"):
        assert absent not in legend
    assert "cluster_legend" not in to_dot(Report(g), DotOptions(legend=False))


def test_show_frozen_false_hides_frozen_params() -> None:
    r, ids = _case4(frozen=True)
    assert f"n{ids['scale']} [" in to_dot(r)
    hidden = to_dot(r, DotOptions(show_frozen=False))
    assert f"n{ids['scale']} [" not in hidden and "frozen" not in hidden


def test_title_from_options_or_verdict() -> None:
    r, _ = _case4()
    assert 'graph [label="my title"' in to_dot(r, DotOptions(title="my title"))
    first = r.verdict().split(":")[0]
    assert f'graph [label="{first}' in to_dot(r)
    assert 'rankdir="LR"' in to_dot(r, DotOptions(rankdir="LR"))
    with pytest.raises(GraphprobeError):
        DotOptions(rankdir="sideways")


def test_labels_are_escaped() -> None:
    nasty = 'x "q" \\N <b>&\nnext'
    assert quote(nasty) == '"x \\"q\\" \\\\N <b>&\\nnext"'
    g = ProbeGraph()
    w = g.add_node("param", nasty, None, 'mod"ule')
    loss = g.add_node("loss", "l\\oss")
    g.add_edge(w, loss)
    g.losses.append(loss)
    dot = to_dot(Report(g), DotOptions(title='a "title"\\'))
    assert '\\"q\\" \\\\N' in dot and 'label="a \\"title\\"\\\\"' in dot
    # Every quote in the text is either a delimiter or escaped: strip escapes, count the rest.
    for line in dot.splitlines():
        assert line.replace("\\\\", "").replace('\\"', "").count('"') % 2 == 0, line


@needs_engine
def test_escaped_labels_lay_out_and_show_literally() -> None:
    g = ProbeGraph()
    w = g.add_node("param", 'w "x" <y> \\G', None, "m")
    loss = g.add_node("loss", "loss")
    g.add_edge(w, loss)
    g.losses.append(loss)
    svg = layout(to_dot(Report(g)), "svg").decode()
    assert "&lt;y&gt;" in svg and "\\G" in svg


def test_dot_is_deterministic() -> None:
    r1, _ = _case4(unreached=True, frozen=True)
    r2, _ = _case4(unreached=True, frozen=True)
    a, b = to_dot(r1), to_dot(r2)
    assert a == b and a == to_dot(r1)
    assert a.startswith("digraph graphprobe {") and a.endswith("}\n")


def test_deep_graph_needs_no_recursion() -> None:
    g = ProbeGraph()
    prev = g.add_node("param", "w", None, ".".join(["a"] * 50))  # every prefix holds a parameter
    for i in range(20_000):
        mod = ".".join(["a"] * (1 + i % 50))  # deep module paths too
        v = g.add_node("op", "MulBackward0", "MulBackward0", mod)
        g.add_edge(prev, v)
        prev = v
    loss = g.add_node("loss", "loss")
    g.add_edge(prev, loss)
    g.losses.append(loss)
    dot = to_dot(Report(g), DotOptions(title="deep", legend=False, budget=None))
    assert dot.count(" -> ") == 20_001 and dot.count("subgraph cluster_") == 50


# -- layout ---------------------------------------------------------------------------------------
@needs_engine
def test_svg_without_system_dot_uses_graphviz_pure(no_system_dot: None) -> None:
    cmd = find_engine()
    assert "graphviz-pure" in Path(cmd[0]).name
    r, _ = _case4()
    svg = layout(to_dot(r), "svg")
    assert svg.lstrip().startswith(b"<?xml") or b"<svg" in svg[:400]
    assert b"from_numpy" in svg and b"net1.weight" in svg
    assert r.to_svg() == svg.decode()


@needs_engine
def test_svg_layout_is_byte_deterministic() -> None:
    r, _ = _case4(unreached=True)
    assert layout(to_dot(r), "svg") == layout(to_dot(_case4(unreached=True)[0]), "svg")


@needs_engine
def test_png_has_png_magic(tmp_path: Path) -> None:
    r, _ = _case4()
    data = layout(to_dot(r), "png")
    assert data.startswith(PNG_MAGIC)
    out = tmp_path / "g.png"
    write_atomic(out, data)
    assert out.read_bytes() == data


def test_missing_both_engines_names_both(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(LayoutEngineMissing) as e:
        find_engine()
    assert "dot" in str(e.value) and "Graphviz" in str(e.value)
    assert "pip install graphviz-pure" in str(e.value)
    with pytest.raises(LayoutEngineMissing):
        layout("digraph { a }", "svg")


def test_env_var_names_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "mydot"
    fake.write_text("#!/bin/sh\ncat >/dev/null\nprintf 'drawn:%s' \"$1\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv(engine_mod.ENGINE_ENV, str(fake))
    assert find_engine() == [str(fake)]
    if os.name == "posix":
        assert layout("digraph { a }", "svg") == b"drawn:-Tsvg"
    monkeypatch.setenv(engine_mod.ENGINE_ENV, str(tmp_path / "nothing-here"))
    with pytest.raises(LayoutEngineMissing, match="GRAPHPROBE_DOT"):
        find_engine()


@pytest.mark.skipif(os.name != "posix", reason="uses a shell script as a fake engine")
def test_engine_failure_and_timeout_raise_output_error(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    bad = tmp_path / "baddot"
    bad.write_text("#!/bin/sh\ncat >/dev/null\necho 'syntax error in line 1' >&2\nexit 3\n")
    bad.chmod(0o755)
    monkeypatch.setenv(engine_mod.ENGINE_ENV, str(bad))
    with pytest.raises(OutputError, match="syntax error in line 1"):
        layout("digraph {", "svg")
    slow = tmp_path / "slowdot"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setenv(engine_mod.ENGINE_ENV, str(slow))
    with pytest.raises(OutputError, match="too long") as e:
        layout("digraph { a }", "svg", timeout=0.3)
    assert "coarser" in str(e.value)
    with pytest.raises(OutputError):
        layout("digraph { a }", "svg; rm -rf /")


# -- files ----------------------------------------------------------------------------------------
def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    out = tmp_path / "g.svg"
    out.write_bytes(b"old")
    write_atomic(str(out), b"new contents")
    assert out.read_bytes() == b"new contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.svg"]


def test_write_atomic_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "g.png"
    with pytest.raises(OutputError) as e:
        write_atomic(target, b"x")
    assert str(target) in str(e.value) and "does not exist" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_failure_leaves_nothing(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    out = tmp_path / "g.png"
    out.write_bytes(b"old")

    def boom(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OutputError, match="No space left on device"):
        write_atomic(out, b"new")
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png"]


def test_write_atomic_onto_a_directory_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "g.png"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OutputError, match="g.png"):
        write_atomic(target, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png"]
    assert (target / "keep").read_text() == "x"


def test_write_atomic_parent_is_a_file(tmp_path: Path) -> None:
    # Unwritable as root too: the "folder" is a plain file.
    blocker = tmp_path / "ro"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="ro"):
        write_atomic(blocker / "g.png", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro"]
    assert blocker.read_text() == "not a folder"


# -- a real graph ---------------------------------------------------------------------------------
@needs_engine
def test_probe_two_linear_nets_with_a_numpy_cut_renders() -> None:
    import graphprobe
    import torch

    torch.manual_seed(0)
    net1, net2 = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    x = torch.ones(2, 3) * 0.2
    with graphprobe.trace():
        tmp = net1(x)
        loss1 = torch.nn.functional.mse_loss(tmp, torch.ones(2, 3) * 0.5)
        tmp = torch.from_numpy(tmp.detach().numpy() * 0.5)
        tmp.requires_grad_(True)
        loss2 = torch.nn.functional.mse_loss(net2(tmp), torch.ones(2, 3))
        r = graphprobe.probe(loss1, loss2, names=["loss1", "loss2"],
                             params={"net1": net1, "net2": net2})
    dot = to_dot(r)
    for module in ("net1", "net2"):
        assert f"n{r.model.label.index(module + '.weight')} [" in _cluster_block(dot, module)
    assert r.model.cut_edges, "the recorder should have found the numpy round trip"
    s, d, _ = r.model.cut_edges[0]
    leaf = next(p for p in r.model.producers()[d] if r.model.kind[p] == "reentry_leaf")
    stmt = _edge_stmt(dot, s, leaf)  # drawn into the rebuilt tmp, which feeds d
    assert 'color="#d62728"' in stmt and "numpy" in stmt and "from_numpy" in stmt
    assert "leaf rebuilt outside autograd" in dot
    svg = layout(dot, "svg")
    assert svg.count(b'class="node"') >= 10 and b"from_numpy" in svg
