"""Saved reports read back: ``Report.from_dict`` and ``graphprobe show``.

Every renderer gives the same bytes for a report rebuilt from its JSON as for the report the run
made, and ``to_dict(from_dict(d)) == d``.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphprobe.cli import FORMATS, main, write_report
from graphprobe.model.findings import SEVERITIES, Cause, Cut, Opaque, RebuiltLeaf, ScriptError, Unreached
from graphprobe.report import Report

SAMPLES = ["case4_numpy.py", "case1_sum.py", "case2_backward_twice.py", "pseudo_lidar.py"]
EXTS = sorted({".svg", ".png", ".html", ".txt", ".dot", ".json"})


@pytest.fixture(autouse=True)
def _pure_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the layout engine to graphviz-pure, as docs/regenerate.py does: one layout, one set of bytes."""
    pure = shutil.which("graphviz-pure") or str(Path(sys.executable).parent / "graphviz-pure")
    assert os.path.isfile(pure), "graphviz-pure (a dependency of graphprobe) is not installed"
    monkeypatch.setenv("GRAPHPROBE_DOT", pure)


def _saved(report: Report, tmp_path: Path, name: str = "run.json") -> Path:
    path = tmp_path / name
    write_report(report, str(path))
    return path


def _cases() -> list[object]:
    """(sample, extension) pairs; the laid-out formats of the two larger samples run with -m slow."""
    out: list[object] = []
    for name in SAMPLES:
        for ext in EXTS:
            slow = ext in (".svg", ".png", ".html") and name in ("case4_numpy.py", "case2_backward_twice.py")
            out.append(pytest.param(name, ext, marks=[pytest.mark.slow] if slow else []))
    return out


@pytest.mark.parametrize(("name", "ext"), _cases())
def test_show_gives_the_bytes_of_a_direct_render(name: str, ext: str, sample_report, tmp_path: Path) -> None:
    report = sample_report(name)
    saved = _saved(report, tmp_path)
    direct, shown = tmp_path / f"direct{ext}", tmp_path / f"shown{ext}"
    write_report(report, str(direct))
    assert main(["show", str(saved), "-o", str(shown)]) == 0
    assert shown.read_bytes() == direct.read_bytes(), f"{name} {ext}"


def test_show_without_output_prints_the_text_report(sample_report, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    report = sample_report("case2_backward_twice.py")
    saved = _saved(report, tmp_path)
    capsys.readouterr()
    assert main(["show", str(saved), "--no-color"]) == 0
    assert capsys.readouterr().out == report.to_text()
    assert main(["show", str(saved), "-o", "-", "--no-color"]) == 0
    assert capsys.readouterr().out == report.to_text()


def test_show_keeps_the_picture_options(sample_report, tmp_path: Path) -> None:
    report = sample_report("pseudo_lidar.py")
    saved = _saved(report, tmp_path)
    write_report(report, str(tmp_path / "d.dot"), "my title", depth=1, expand=("detector",), budget=50)
    assert main(["show", str(saved), "-o", str(tmp_path / "s.dot"), "--title", "my title", "--depth", "1",
                 "--expand", "detector", "--budget", "50"]) == 0
    assert (tmp_path / "s.dot").read_bytes() == (tmp_path / "d.dot").read_bytes()
    assert b"my title" in (tmp_path / "s.dot").read_bytes()


@pytest.mark.parametrize("name", SAMPLES + ["pseudo_lidar_fixed.py"])
def test_to_dict_of_from_dict_is_the_dict(name: str, sample_report) -> None:
    d = sample_report(name).to_dict()
    keep = json.dumps(d)
    r = Report.from_dict(d)
    assert r.to_dict() == d
    assert json.dumps(d) == keep  # the caller's dict is not changed, nor shared
    r.losses.append({"name": "x"})
    assert len(d["losses"]) == len(r.losses) - 1


def test_findings_come_back_typed(sample_report) -> None:
    r = Report.from_dict(sample_report("case4_numpy.py").to_dict())
    assert r.cuts and all(isinstance(c, Cut) for c in r.cuts)
    assert all(isinstance(x, (Unreached, RebuiltLeaf)) for x in r.detached)
    assert any(isinstance(x, RebuiltLeaf) for x in r.detached)
    assert all(isinstance(c, Cause) for c in r.causes)
    assert r.cuts[0]["from"] == r.cuts[0].from_
    r2 = Report.from_dict(sample_report("case2_backward_twice.py").to_dict())
    assert r2.errors and all(isinstance(e, ScriptError) for e in r2.errors)
    assert r2.errors[0]["kind"] == "backward_twice"
    # The graph columns the renderers read are back.
    g0, g1 = sample_report("case4_numpy.py").model, r.model
    for col in ("kind", "label", "op", "module", "name", "meta", "location", "freed", "src", "dst",
                "cut_edges", "losses", "composite", "optimizers", "opaque", "frozen"):
        assert getattr(g1, col) == getattr(g0, col), col
    assert g1.in_param_order(g1.nodes_of_kind("param")) == g0.in_param_order(g0.nodes_of_kind("param"))


def test_a_key_a_finding_class_lacks_is_kept() -> None:
    """A newer writer's extra key survives a round trip: that finding stays the dict it was."""
    cut = Cut(kind="numpy", location="a.py:3", line="x.numpy()", severity="error").to_dict()
    assert Cut.from_dict(cut).to_dict() == cut
    assert Cut.from_dict({**cut, "new_key": 1}) is None
    op = Opaque(node=3, op="CheckpointFunctionBackward", kind="checkpoint", reason="r").to_dict()
    assert Opaque.from_dict(op).to_dict() == op and Opaque.from_dict({**op, "extra": 0}) is None


def test_an_extra_key_in_a_saved_report_survives(sample_report) -> None:
    d = sample_report("pseudo_lidar.py").to_dict()
    d["cuts"][0]["future_key"] = {"a": [1]}
    r = Report.from_dict(d)
    assert r.to_dict() == d
    assert "det_loss does not reach" in r.verdict()


def test_from_dict_refuses_what_is_no_report() -> None:
    with pytest.raises(ValueError, match="not a graphprobe report"):
        Report.from_dict({"verdict": "x"})
    with pytest.raises(ValueError, match="schema 2"):
        Report.from_dict({"schema": 2, "nodes": []})


def test_show_usage_errors_are_one_line(sample_report, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    saved = _saved(sample_report("case1_sum.py"), tmp_path)
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "text.json").write_text("not json at all")
    (tmp_path / "v9.json").write_text(json.dumps({"schema": 9, "nodes": []}))
    cases = [
        (["show", str(tmp_path / "missing.json"), "-o", str(tmp_path / "a.svg")], "no such report"),
        (["show", str(tmp_path / "list.json")], "is not a graphprobe report"),
        (["show", str(tmp_path / "text.json")], "is not a graphprobe report (not JSON"),
        (["show", str(tmp_path / "v9.json")], "schema 9"),
        (["show", str(saved), "-o", str(tmp_path / "a.pdf")], "unknown output extension '.pdf'"),
        (["show", str(saved), "-o", str(saved)], "is the report being shown"),
        (["show", str(tmp_path)], "is a folder"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "a.pdf").exists() and not (tmp_path / "a.svg").exists()
    assert json.loads(saved.read_text())["schema"] == 1  # never overwritten


def test_show_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:" in out and "graphprobe show run.json -o run.svg" in out
    assert set(FORMATS) >= {".svg", ".png", ".html", ".txt", ".dot", ".json"}


_text = st.text("ab:.é ", max_size=6)
_opt = st.none() | _text
_refs = st.lists(st.fixed_dictionaries({"node": st.integers(0, 99), "op": _opt, "module": _opt}), max_size=3)


@settings(max_examples=40, deadline=None)
@given(st.builds(Cut, severity=st.sampled_from(SEVERITIES), reason=_text, fix=_text,
                 caused_by=st.none() | st.integers(0, 5), kind=_text, location=_opt, reentry_location=_opt,
                 from_=st.fixed_dictionaries({"node": st.integers(0, 9)}), sources=st.lists(st.integers(0, 9)),
                 blocked=st.lists(st.fixed_dictionaries({"loss": _text, "params": st.lists(_text, max_size=3)})),
                 guess=st.booleans(), ignored=st.booleans(), line=_text, exit_location=_opt, role=_text,
                 count=st.integers(1, 50))
       | st.builds(ScriptError, severity=st.sampled_from(SEVERITIES), kind=_text, message=_text, location=_opt,
                   loss=_opt, nodes=_refs, modules=st.lists(_text, max_size=3), caused_by=st.none() | st.integers(0, 3))
       | st.builds(RebuiltLeaf, name=_text, node=st.none() | st.integers(0, 9), consumed=st.booleans(),
                   losses=st.lists(_text, max_size=3), optimizers=st.lists(_text, max_size=2))
       | st.builds(Unreached, name=_text, module=_opt, cut=st.none() | st.integers(0, 3)))
def test_every_finding_comes_back_from_its_dict(f) -> None:
    d = f.to_dict()
    back = type(f).from_dict(json.loads(json.dumps(d)))
    assert type(back) is type(f) and back.to_dict() == d


def test_a_report_whose_edges_name_no_node_is_refused(sample_report, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    d = sample_report("case1_sum.py").to_dict()
    d["edges"].append({"source": 0, "target": len(d["nodes"]) + 5, "kind": "data"})
    (tmp_path / "broken.json").write_text(json.dumps(d))
    assert main(["show", str(tmp_path / "broken.json"), "-o", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert "can be read back" in err and err.count("\n") == 1
