"""``graphprobe diff`` and ``check --baseline``: which loss gained or lost which parameter, which cuts
appeared or went, and exit 1 when a loss lost a parameter it used to reach."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from graphprobe.analysis.diff import diff_reports
from graphprobe.cli import main, write_report
from graphprobe.render.diff import render_diff

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPTH = ["depth_net.0.weight", "depth_net.0.bias", "depth_net.2.weight", "depth_net.2.bias"]


@pytest.fixture
def saved(sample_report, tmp_path: Path) -> dict[str, Path]:
    """The reports of pseudo_lidar_fixed.py (``old``) and pseudo_lidar.py (``new``), saved."""
    out = {}
    for key, name in (("old", "pseudo_lidar_fixed.py"), ("new", "pseudo_lidar.py")):
        out[key] = tmp_path / f"{key}.json"
        write_report(sample_report(name), str(out[key]))
    return out


def test_diff_names_det_loss_losing_the_depth_net(saved: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(saved["old"]), str(saved["new"])]) == 1
    out = capsys.readouterr().out
    assert out.startswith("graphprobe diff: regression: det_loss lost 4 parameters")
    lost = [line for line in out.splitlines() if line.startswith("  det_loss lost")]
    assert lost == [f"  det_loss lost depth_net (4): {', '.join(DEPTH)}"]
    assert "Cuts that appeared" in out and "numpy cut at pseudo_lidar.py:40" in out
    assert "Gained" not in out and "Cuts that went" not in out


def test_the_reverse_direction_exits_0_and_says_what_was_gained(saved: dict[str, Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(saved["new"]), str(saved["old"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graphprobe diff: no loss lost a parameter it used to reach")
    assert f"  det_loss gained depth_net (4): {', '.join(DEPTH)}" in out.splitlines()
    assert "Cuts that went" in out and "Lost" not in out


def test_a_report_against_itself_is_no_change(saved: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(saved["new"]), str(saved["new"])]) == 0
    assert capsys.readouterr().out.startswith("graphprobe diff: no change")


def _report(reaches: dict[str, list[str]], cuts: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    params = sorted({p for ps in reaches.values() for p in ps})
    return {"schema": 1, "verdict": "v", "losses": [{"name": n} for n in reaches],
            "params": [{"name": p, "module": p.rsplit(".", 1)[0]} for p in params],
            "reaches": reaches, "cuts": list(cuts), "nodes": [], "edges": []}


def _cut(kind: str, location: str, line: str, ignored: bool = False) -> dict[str, Any]:
    return {"kind": kind, "location": location, "line": line, "severity": "error", "blocked": [],
            "ignored": ignored}


def test_a_removed_parameter_is_listed_not_lost() -> None:
    old = _report({"loss": ["enc.w", "dec.w", "old.w"]})
    new = _report({"loss": ["enc.w", "dec.w"]})
    d = diff_reports(old, new)
    assert d.params_removed == ["old.w"] and not d.regressed and d.changes == []
    # But a parameter still in the model that the loss no longer reaches is a regression.
    new2 = copy.deepcopy(new)
    new2["params"].append({"name": "old.w", "module": "old"})
    d2 = diff_reports(old, new2)
    assert d2.regressed and d2.changes[0].lost == ["old.w"] and d2.params_removed == []


def test_losses_added_and_removed_do_not_regress() -> None:
    d = diff_reports(_report({"a": ["m.w"], "b": ["m.w"]}), _report({"a": ["m.w"], "c": ["m.w"]}))
    assert d.losses_added == ["c"] and d.losses_removed == ["b"] and not d.regressed
    text = render_diff(d)
    assert "Losses added\n  c" in text and "Losses removed\n  b" in text


def test_a_cut_whose_line_moved_is_the_same_cut() -> None:
    old = _report({"l": ["m.w"]}, [_cut("numpy", "t.py:10", "x = y.numpy()")])
    new = _report({"l": ["m.w"]}, [_cut("numpy", "t.py:14", "x = y.numpy()")])
    assert diff_reports(old, new).empty
    # Two cuts on identical lines are two cuts: one going is seen.
    twice = _report({"l": ["m.w"]}, [_cut("item", "t.py:3", "v = t.item()"), _cut("item", "t.py:9", "v = t.item()")])
    once = _report({"l": ["m.w"]}, [_cut("item", "t.py:3", "v = t.item()")])
    d = diff_reports(twice, once)
    assert [c.location for c in d.cuts_went] == ["t.py:9"] and d.cuts_appeared == []
    # Another kind at the same line is another cut; an ignored cut is no finding.
    other = _report({"l": ["m.w"]}, [_cut("detach", "t.py:10", "x = y.numpy()"),
                                     _cut("data", "t.py:20", "z = w.data", ignored=True)])
    d = diff_reports(old, other)
    assert [c.kind for c in d.cuts_appeared] == ["detach"] and [c.kind for c in d.cuts_went] == ["numpy"]


def test_diff_usage_errors_are_one_line(saved: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "other.json").write_text(json.dumps({"name": "not a report"}))
    for argv, words in ((["diff", str(tmp_path / "gone.json"), str(saved["new"])], "no such report"),
                        (["diff", str(saved["old"]), str(tmp_path / "other.json")], "not a graphprobe report")):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert main(["diff", str(saved["old"])]) == 2  # argparse: a missing argument
    capsys.readouterr()
    assert main(["diff", "--help"]) == 0
    assert "example:" in capsys.readouterr().out


def test_check_baseline(saved: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    fixed, cut = "samples/pseudo_lidar_fixed.py", "samples/pseudo_lidar.py"
    # The fixed sample against its own report: the check's own exit code (0), and the diff printed.
    capsys.readouterr()
    assert main(["check", fixed, "-q", "--no-color", "--baseline", str(saved["old"])]) == 0
    out = capsys.readouterr().out
    assert "graphprobe diff: no change" in out and out.index("Reaches") < out.index("graphprobe diff:")
    # A baseline in which depth_loss also reached the detector: this run lost it, so 1.
    fake = json.loads(saved["old"].read_text())
    fake["reaches"]["depth_loss"] += ["detector.0.weight", "detector.0.bias"]
    (tmp_path / "fake.json").write_text(json.dumps(fake))
    assert main(["check", fixed, "-q", "--no-color", "--baseline", str(tmp_path / "fake.json")]) == 1
    assert "depth_loss lost detector (2): detector.0.weight, detector.0.bias" in capsys.readouterr().out
    # The cut sample against the fixed baseline: the regression is named.
    assert main(["check", cut, "-q", "--no-color", "--baseline", str(saved["old"])]) == 1
    assert f"det_loss lost depth_net (4): {', '.join(DEPTH)}" in capsys.readouterr().out


def test_a_bad_baseline_stops_check_before_the_script_runs(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "s.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    capsys.readouterr()
    assert main(["check", str(script), "--baseline", str(tmp_path / "none.json")]) == 2
    assert "no such report" in capsys.readouterr().err and not marker.exists()


def test_the_readme_saved_reports_block_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import re
    import shlex

    readme = Path(ROOT, "README.md").read_text(encoding="utf-8")
    lines = [ln for b in re.findall(r"```shell\n(.*?)```", readme, flags=re.S)
             for ln in b.splitlines() if ln.startswith("$ graphprobe ")]
    assert len(lines) >= 5 and any(" diff " in ln for ln in lines) and any("--baseline" in ln for ln in lines)
    (tmp_path / "samples").symlink_to(Path(ROOT, "samples"))
    monkeypatch.chdir(tmp_path)
    for line in lines:  # one folder: a later line reads what an earlier one wrote
        cmd, _, comment = line[2:].partition("#")
        m = re.search(r"exit (\d+)", comment)
        argv = shlex.split(cmd)[1:]
        assert main(argv) == (int(m.group(1)) if m else 0), line
        out = capsys.readouterr().out
        if "-o" in argv:
            assert (tmp_path / argv[argv.index("-o") + 1]).is_file(), line
        if argv[0] == "diff" and m and m.group(1) == "1":
            assert "det_loss lost depth_net (4)" in out


def test_baseline_is_an_option_of_check_only() -> None:
    from graphprobe.cli import parse_args

    # Under check it is ours, wherever it stands; under render it is the script's.
    args = parse_args(["check", "x.py", "--baseline", "b.json", "7"])
    assert (args.script, args.baseline, args.script_args) == ("x.py", "b.json", ["7"])
    args = parse_args(["check", "--baseline", "b.json", "x.py"])
    assert (args.script, args.baseline, args.script_args) == ("x.py", "b.json", [])
    args = parse_args(["render", "x.py", "--baseline", "b.json"])
    assert args.script_args == ["--baseline", "b.json"] and not hasattr(args, "baseline")
