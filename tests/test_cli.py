"""The command line, in-process (``graphprobe.cli.main``) on the samples, and once for real.

Every verdict here is read from the JSON the CLI writes, against samples/README.md: the seed's
cases, each way of leaving and re-entering autograd (kind, exit line, re-entry line, the ops in
between), ``check``'s exit codes, the output formats, ``--steps``, ``--keep-running`` and the
documented exit codes for bad input.
"""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphprobe.cli import main
from graphprobe.errors import (
    EXIT_BACKWARD_FAILED,
    EXIT_FINDINGS,
    EXIT_NO_BACKWARD,
    EXIT_OUTPUT,
    EXIT_SCRIPT,
    EXIT_USAGE,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NET1 = ["net1.weight", "net1.bias"]
NET2 = ["net2.weight", "net2.bias"]


# -- helpers ------------------------------------------------------------------------------------

@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """Run in an empty folder: whatever the CLI writes lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _sample(name: str) -> str:
    p = SAMPLES / name
    assert p.is_file(), p
    return str(p)


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop whatever came before
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _render_json(capsys, cwd: Path, name: str, *extra: str, expect_rc: int = 0) -> dict:
    out = cwd / (Path(name).stem + ".json")
    rc, _, err = _cli(capsys, "render", _sample(name), "-o", str(out), "-q", *extra)
    assert rc == expect_rc, err
    assert "Traceback" not in err
    return json.loads(out.read_text(encoding="utf-8"))


def _line(loc: str | None) -> int:
    assert loc, loc
    return int(loc.rpartition(":")[2])


def _file(loc: str | None) -> str:
    assert loc, loc
    return os.path.basename(loc.rpartition(":")[0])


def _node(d: dict, i: int) -> dict:
    n = d["nodes"][i]
    assert n["id"] == i
    return n


def _ops(cut: dict) -> list[str]:
    return [s["op"] for s in cut["chain"]]


# -- 1. the seed's cases ------------------------------------------------------------------------

def test_case1_one_component_net1_shared_by_both_terms(capsys, cwd):
    d = _render_json(capsys, cwd, "case1_sum.py")
    names = [l["name"] for l in d["losses"]]
    # tol_loss is backwarded; its named terms loss1 and loss2 count as losses too.
    assert set(names) == {"tol_loss", "loss1", "loss2"}
    assert all(_line(l["location"]) == 32 for l in d["losses"])
    assert sorted(d["reaches"]["tol_loss"]) == sorted(NET1 + NET2)
    assert sorted(d["reaches"]["loss1"]) == sorted(NET1)
    assert sorted(d["reaches"]["loss2"]) == sorted(NET1 + NET2)
    assert len(d["components"]) == 1
    assert set(d["components"][0]["losses"]) == {"tol_loss", "loss1", "loss2"}
    assert len(d["shared"]) == 1
    assert sorted(d["shared"][0]["params"]) == sorted(NET1)
    assert sorted(d["shared"][0]["losses"]) == ["loss1", "loss2"]
    assert d["cuts"] == [] and d["detached"] == [] and d["freed"] == [] and d["errors"] == []
    assert d["findings"] == {"error": 0, "warning": 0, "info": 0}
    opts = {p["name"]: p["optimizers"] for p in d["params"]}
    assert opts == {"net1.weight": ["opt1"], "net1.bias": ["opt1"],
                    "net2.weight": ["opt2"], "net2.bias": ["opt2"]}


def test_case2_backward_twice_explained(capsys, cwd):
    d = _render_json(capsys, cwd, "case2_backward_twice.py", expect_rc=EXIT_BACKWARD_FAILED)
    assert EXIT_BACKWARD_FAILED == 6
    err = d["errors"][0]
    assert err["kind"] == "backward_twice"
    assert err["severity"] == "error"
    assert _file(err["location"]) == "case2_backward_twice.py" and _line(err["location"]) == 32
    assert err["freed_by"]["loss"] == "loss1"
    assert _line(err["freed_by"]["location"]) == 31
    assert err["loss"] == "loss2"
    assert {"op": "AddmmBackward0", "module": "net1"} in [
        {"op": n["op"], "module": n["module"]} for n in err["nodes"]]
    assert all(_node(d, n["node"])["op"] == n["op"] for n in err["nodes"])
    assert "net1" in err["modules"] and "net2" not in err["modules"]
    assert "retain_graph=True" in err["fix"]
    assert "backward" in err["fix"]  # the other fix: one backward of the sum
    assert "AddmmBackward0" in err["message"] and "case2_backward_twice.py:31" in err["message"]
    assert d["findings"]["error"] >= 1


def test_case3_mul_joins_one_graph(capsys, cwd):
    d = _render_json(capsys, cwd, "case3_mul.py")
    assert len(d["components"]) == 1
    assert d["cuts"] == [] and d["detached"] == [] and d["findings"]["error"] == 0
    assert sorted(d["reaches"]["loss2"]) == sorted(NET1 + NET2)
    mul = [n for n in d["nodes"] if n["op"] == "MulBackward0"]
    assert len(mul) == 1
    m = mul[0]["id"]
    into = {_node(d, e["source"])["module"] for e in d["edges"] if e["target"] == m}
    out_of = {_node(d, e["target"])["module"] for e in d["edges"] if e["source"] == m}
    assert into == {"net1"} and "net2" in out_of


def test_case4_numpy_cut(capsys, cwd):
    d = _render_json(capsys, cwd, "case4_numpy.py")
    assert len(d["components"]) == 2
    assert sorted(d["reaches"]["loss2"]) == sorted(NET2)
    assert sorted(d["reaches"]["loss1"]) == sorted(NET1)
    assert len(d["cuts"]) == 1
    cut = d["cuts"][0]
    assert cut["kind"] == "numpy"
    assert _file(cut["location"]) == "case4_numpy.py" and _line(cut["location"]) == 26
    assert _ops(cut) == ["detach", "numpy", "× 0.5", "from_numpy"]
    assert _line(cut["chain"][-1]["location"]) == 26  # torch.from_numpy(...)
    assert _line(cut["reentry_location"]) == 27  # tmp.requires_grad_(True)
    assert cut["from"]["module"] == "net1" and cut["from"]["op"] == "AddmmBackward0"
    assert cut["to"]["module"] == "net2"
    assert cut["blocked"] == [{"loss": "loss2", "params": NET1}]
    assert cut["severity"] == "error" and cut["ignored"] is False
    assert any(e["kind"] == "cut" for e in d["edges"])
    leaf = [x for x in d["detached"] if x["kind"] == "reentry_leaf"]
    assert [x["name"] for x in leaf] == ["tmp"] and leaf[0]["optimizers"] == []
    assert d["findings"]["error"] >= 1


def test_case4b_net1_unreached_but_held_by_opt1(capsys, cwd):
    d = _render_json(capsys, cwd, "case4b_only_loss2.py")
    assert [l["name"] for l in d["losses"]] == ["loss2"]
    un = {x["name"]: x for x in d["detached"] if x["kind"] == "unreached"}
    assert set(un) == set(NET1)
    for x in un.values():
        assert x["optimizers"] == ["opt1"]
        assert x["severity"] == "error"
    assert len(d["cuts"]) == 1 and _line(d["cuts"][0]["location"]) == 28
    assert _line(d["cuts"][0]["reentry_location"]) == 29


# -- 2. each exit and re-entry kind -------------------------------------------------------------

# sample: (kind, exit line, (re-entry op in the chain, its line) or None, re-entry_location line
#          or None, [(op, line) that must be in the chain], blocked loss, blocked params)
EXITS = {
    "cut_item_tensor.py": ("item", 24, ("tensor", 25), None, [("item", 24)], "loss", NET1),
    "cut_tolist_tensor.py": ("tolist", 23, ("tensor", 25), None, [("tolist", 23)], "loss2", NET1),
    "cut_data.py": ("data", 23, None, 23, [("data", 23)], "loss2", NET1),
    "cut_detach.py": ("detach", 20, None, 21, [("detach", 20)], "loss",
                      ["encoder.weight", "encoder.bias"]),
    "cut_cpu_numpy.py": ("numpy", 24, ("as_tensor", 26), None, [("cpu", 24), ("numpy", 24)], "loss2", NET1),
    "cut_numpy_clip_concat.py": ("numpy", 25, ("from_numpy", 28), None,
                                 [("numpy", 25), ("np.clip", 26), ("np.concatenate", 27)], "loss2", NET1),
    "cut_np_asarray.py": ("numpy", 25, ("tensor", 27), None, [("np.asarray", 25), ("np.clip", 26)],
                          "loss2", NET1),
    "cut_no_grad.py": ("no_grad", 21, None, 22, [], "loss", NET1),
    "cut_nested_module.py": ("numpy", 20, ("from_numpy", 21), None, [("numpy", 20), ("np.round", 20)],
                             "loss", ["model.coarse.weight", "model.coarse.bias"]),
}


@pytest.mark.parametrize("name", sorted(EXITS))
def test_exit_and_reentry_kinds(capsys, cwd, name):
    kind, exit_line, reentry_op, reentry_line, in_chain, loss, params = EXITS[name]
    d = _render_json(capsys, cwd, name)
    live = [c for c in d["cuts"] if not c["ignored"]]
    assert len(live) == 1, [c["kind"] for c in live]
    cut = live[0]
    assert cut["kind"] == kind
    assert _file(cut["location"]) == name
    # A no_grad cut is located at its `with torch.no_grad():` line, the op inside it kept as exit_location.
    assert _line(cut.get("exit_location") or cut["location"]) == exit_line
    if kind == "no_grad":
        assert _line(cut["location"]) == exit_line - 1 and cut["line"] == "with torch.no_grad():"
    assert _line(cut["chain"][0]["location"]) == exit_line
    chain = [(s["op"], _line(s["location"])) for s in cut["chain"]]
    for step in in_chain:
        assert step in chain, chain
    if reentry_op is not None:
        assert reentry_op in chain, chain
        # the re-entry comes after the exit and every numpy step
        assert all(chain.index(reentry_op) > chain.index(s) for s in in_chain), chain
    if reentry_line is not None:
        assert _line(cut["reentry_location"]) == reentry_line
    assert _line(cut["reentry_location"]) >= exit_line
    assert {"loss": loss, "params": params} in cut["blocked"]
    assert not set(params) & set(d["reaches"][loss])
    # Each of these samples is a bug: something of severity error is reported.
    assert d["findings"]["error"] >= 1, d["verdict"]
    assert f"{name}:{_line(cut['location'])}" in d["verdict"]


def test_numpy_functions_between_exit_and_reentry_in_order(capsys, cwd):
    d = _render_json(capsys, cwd, "cut_numpy_clip_concat.py")
    assert _ops(d["cuts"][0]) == ["detach", "numpy", "np.clip", "np.concatenate", "from_numpy"]
    d = _render_json(capsys, cwd, "cut_np_asarray.py")
    assert _ops(d["cuts"][0]) == ["detach", "np.asarray", "np.clip", "tensor"]


def test_cut_inside_a_nested_module(capsys, cwd):
    d = _render_json(capsys, cwd, "cut_nested_module.py")
    cut = d["cuts"][0]
    assert cut["from"]["module"] == "model.coarse"
    assert cut["to"]["module"] == "model.fine"
    assert sorted(d["reaches"]["loss"]) == ["model.fine.bias", "model.fine.weight"]
    un = {x["name"]: x for x in d["detached"] if x["kind"] == "unreached"}
    assert set(un) == {"model.coarse.weight", "model.coarse.bias"}
    assert all(x["optimizers"] == ["opt"] and x["severity"] == "error" for x in un.values())


# -- 3. check -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, code", [
    ("case4_numpy.py", EXIT_FINDINGS),
    ("gan_detach.py", 0),
    ("actor_critic.py", 0),
    ("clean_pipeline.py", 0),
])
def test_check_exit_code(capsys, cwd, name, code):
    rc, out, err = _cli(capsys, "check", _sample(name), "-q")
    assert rc == code, out + err
    assert out.startswith("graphprobe:")
    assert "Traceback" not in err
    assert os.listdir(cwd) == []  # check writes no file


@pytest.mark.parametrize("name, line, loss, params", [
    ("gan_detach.py", 26, "d_loss", ["G.weight", "G.bias"]),
    ("actor_critic.py", 23, "actor_loss", ["critic.weight", "critic.bias"]),
])
def test_intended_detach_is_info(capsys, cwd, name, line, loss, params):
    d = _render_json(capsys, cwd, name)
    assert len(d["cuts"]) == 1
    cut = d["cuts"][0]
    assert cut["kind"] == "detach" and _line(cut["location"]) == line
    assert cut["severity"] == "info"
    assert {"loss": loss, "params": params} in cut["blocked"]
    assert d["findings"]["error"] == 0 and d["findings"]["info"] >= 1
    assert d["detached"] == []
    # another loss trains the upstream params
    assert any(set(params) <= set(r) for l, r in d["reaches"].items() if l != loss)


def test_clean_pipeline_has_no_finding_at_all(capsys, cwd):
    d = _render_json(capsys, cwd, "clean_pipeline.py")
    assert d["cuts"] == [] and d["detached"] == [] and d["freed"] == [] and d["errors"] == []
    assert d["findings"] == {"error": 0, "warning": 0, "info": 0}
    assert len(d["components"]) == 1
    assert {f["name"] for f in d["frozen"]} == {"frozen.weight", "frozen.bias"}
    assert sorted(d["reaches"]["loss"]) == sorted(
        ["stage1.weight", "stage1.bias", "stage2.weight", "stage2.bias"])
    frozen = {p["name"]: p for p in d["params"] if p["name"].startswith("frozen.")}
    assert all(p["frozen"] and p["optimizers"] == [] for p in frozen.values())
    assert "frozen" not in " ".join(d["verdict"].split(":", 1)[1:])


# -- 4. output formats and options ----------------------------------------------------------------

@pytest.mark.parametrize("ext", ["svg", "png", "dot", "gv", "json", "txt"])
def test_output_format_follows_extension(capsys, cwd, ext):
    out = cwd / f"graph.{ext}"
    rc, stdout, err = _cli(capsys, "render", _sample("case4_numpy.py"), "-o", str(out))
    assert rc == 0, err
    data = out.read_bytes()
    if ext == "svg":
        assert b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>")
        assert b"net1" in data and b"net2" in data
    elif ext == "png":
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    elif ext in ("dot", "gv"):
        assert data.lstrip().startswith(b"digraph")
        assert b"net1" in data
    elif ext == "json":
        d = json.loads(data)
        assert d["schema"] == 1 and d["cuts"][0]["kind"] == "numpy"
    else:
        text = data.decode("utf-8")
        assert text.startswith("graphprobe:")
        assert "case4_numpy.py:26" in text
    assert os.listdir(cwd) == [out.name]  # no temporary file left beside it
    assert "wrote" in err and out.name in err


def test_dash_prints_text_report(capsys, cwd):
    rc, out, err = _cli(capsys, "render", _sample("case4_numpy.py"), "-o", "-")
    assert rc == 0, err
    assert out.startswith("graphprobe:")
    assert "numpy cut at case4_numpy.py:26" in out
    assert "detach → numpy → × 0.5 → from_numpy" in out
    assert os.listdir(cwd) == []


def test_no_output_option_writes_svg_named_after_script(capsys, cwd):
    rc, out, err = _cli(capsys, "render", _sample("case1_sum.py"))
    assert rc == 0, err
    assert os.listdir(cwd) == ["case1_sum.svg"]
    assert b"<svg" in (cwd / "case1_sum.svg").read_bytes()[:2000]
    assert out.startswith("graphprobe:")  # and the text report is printed


def test_steps_two_captures_two_rounds(capsys, cwd):
    one = _render_json(capsys, cwd, "case1_sum.py")
    two = _render_json(capsys, cwd, "case1_sum.py", "--steps", "2")
    assert len(two["losses"]) == 2 * len(one["losses"])
    assert {l["name"] for l in one["losses"]} < {l["name"] for l in two["losses"]}
    one4 = _render_json(capsys, cwd, "case4_numpy.py")
    two4 = _render_json(capsys, cwd, "case4_numpy.py", "--steps", "2")
    assert len(two4["losses"]) == 2 * len(one4["losses"]) == 4
    assert all(c["kind"] == "numpy" and _line(c["location"]) == 26 for c in two4["cuts"])


def test_keep_running_lets_the_script_finish_unchanged(capsys, cwd, monkeypatch):
    script = _sample("case4b_only_loss2.py")
    rc, out, err = _cli(capsys, "render", script, "-o", "g.json", "-q", "--keep-running")
    assert rc == 0, err
    assert (cwd / "g.json").is_file()
    assert out.strip().splitlines()[-1].startswith("net1 output unchanged: True")
    monkeypatch.setattr(sys, "argv", [script])
    runpy.run_path(script, run_name="__main__")
    plain = capsys.readouterr().out
    assert out == plain


def test_without_keep_running_the_script_stops_after_capture(capsys, cwd):
    rc, out, err = _cli(capsys, "render", _sample("case4b_only_loss2.py"), "-o", "g.json", "-q")
    assert rc == 0, err
    assert "net1 output unchanged" not in out


_SAVE = """
import sys as _sys
torch.save([_p.detach().clone() for _m in ({mods}) for _p in _m.parameters()], _sys.argv[1])
"""


@pytest.mark.parametrize("name, mods", [
    ("case1_sum.py", "net1, net2"),
    ("case4_numpy.py", "net1, net2"),
    ("cut_numpy_clip_concat.py", "net1, net2"),
    ("cut_item_tensor.py", "net1, net2"),
])
def test_keep_running_numerics_bit_identical_to_plain_run(capsys, cwd, monkeypatch, name, mods):
    script = cwd / name
    script.write_text(Path(_sample(name)).read_text() + _SAVE.format(mods=mods))
    monkeypatch.setattr(sys, "argv", [str(script), str(cwd / "plain.pt")])
    runpy.run_path(str(script), run_name="__main__")
    plain_out = capsys.readouterr().out
    rc, out, err = _cli(capsys, "render", str(script), "-o", "g.json", "-q", "--keep-running",
                        str(cwd / "traced.pt"))
    assert rc == 0, err
    assert out == plain_out
    plain = torch.load(cwd / "plain.pt")
    traced = torch.load(cwd / "traced.pt")
    assert len(plain) == len(traced) == 4
    assert all(torch.equal(a, b) for a, b in zip(plain, traced))


# -- 5. bad input ---------------------------------------------------------------------------------

BAD_SCRIPTS = {
    "syntax.py": "import torch\nx = (\n",
    "nobackward.py": ("import torch\nx = torch.ones(2, requires_grad=True)\n"
                      "y = (x * 2).sum()\nprint('done')\n"),
    "raises.py": ("import torch\n\ndef load():\n    raise ValueError('no data file here')\n\n"
                  "x = torch.ones(2, requires_grad=True)\nload()\n(x * 2).sum().backward()\n"),
}


def _assert_one_clear_paragraph(err: str) -> str:
    assert "Traceback" not in err, err
    msg = err.strip()
    assert msg, "no message on stderr"
    assert msg.startswith("graphprobe:"), msg
    assert "\n\n" not in msg, msg
    return msg


@pytest.mark.parametrize("case, code, words", [
    ("missing", EXIT_SCRIPT, ["no such script", "missing.py"]),
    ("syntax", EXIT_SCRIPT, ["syntax.py", "syntax error", "line 2"]),
    ("nobackward", EXIT_NO_BACKWARD, ["nobackward.py", "backward"]),
    ("raises", EXIT_SCRIPT, ["raises.py", "ValueError", "no data file here", "before its first backward"]),
    ("badext", EXIT_USAGE, ["graph.xyz", ".svg"]),
    ("noext", EXIT_USAGE, ["graph", ".json"]),
    ("nodir", EXIT_OUTPUT, ["nodir", "does not exist"]),
    ("isdir", EXIT_USAGE, ["adir.json", "folder"]),
])
def test_bad_input_exit_code_and_message(capsys, cwd, case, code, words):
    for fname, text in BAD_SCRIPTS.items():
        (cwd / fname).write_text(text)
    (cwd / "adir.json").mkdir()
    before = sorted(os.listdir(cwd))
    out_path = "out.json"
    script = f"{case}.py"
    if case == "missing":
        script = "missing.py"
    elif case in ("badext", "noext", "nodir", "isdir"):
        script = _sample("case4_numpy.py")
        out_path = {"badext": "graph.xyz", "noext": "graph", "nodir": str(cwd / "nodir" / "g.json"),
                    "isdir": "adir.json"}[case]
    rc, out, err = _cli(capsys, "render", script, "-o", out_path, "-q")
    assert rc == code, (rc, err)
    msg = _assert_one_clear_paragraph(err)
    for w in words:
        assert w in msg, (w, msg)
    # no partial output: nothing new in the folder (no output, no temporary file, no folder)
    assert sorted(os.listdir(cwd)) == before
    assert os.listdir(cwd / "adir.json") == []


def test_script_arguments_pass_through(capsys, cwd):
    script = cwd / "args.py"
    script.write_text(
        "import sys, torch\n"
        "print('ARGS', sys.argv[1:], __name__)\n"
        "if __name__ == '__main__':\n"
        "    x = torch.ones(2, requires_grad=True)\n"
        "    (x * 2).sum().backward()\n"
    )
    argv0 = list(sys.argv)
    rc, out, err = _cli(capsys, "render", str(script), "--epochs", "1", "-o", "a.json", "-q")
    assert rc == 0, err
    assert "ARGS ['--epochs', '1'] __main__" in out
    rc, out, err = _cli(capsys, "render", str(script), "-q", "-o", "b.json", "--", "-o", "x.txt")
    assert rc == 0, err
    assert "ARGS ['-o', 'x.txt'] __main__" in out
    assert sorted(os.listdir(cwd)) == ["a.json", "args.py", "b.json"]
    assert sys.argv == argv0


def test_steps_zero_is_a_usage_error(capsys, cwd):
    rc, out, err = _cli(capsys, "render", _sample("case4_numpy.py"), "--steps", "0", "-o", "x.json")
    assert rc == 2
    _assert_one_clear_paragraph(err)
    assert os.listdir(cwd) == []


# -- the real thing, once -------------------------------------------------------------------------

def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NO_COLOR", None)
    return env


@pytest.mark.slow
def test_python_dash_m_render_subprocess(tmp_path):
    out = tmp_path / "case4b.json"
    done = subprocess.run(
        [sys.executable, "-m", "graphprobe", "render", _sample("case4b_only_loss2.py"), "-o", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "wrote" in done.stderr and out.name in done.stderr
    d = json.loads(out.read_text())
    un = {x["name"]: x for x in d["detached"] if x["kind"] == "unreached"}
    assert set(un) == set(NET1)
    assert all(x["optimizers"] == ["opt1"] and x["severity"] == "error" for x in un.values())
    assert d["cuts"][0]["kind"] == "numpy"
    assert _ops(d["cuts"][0]) == ["detach", "numpy", "× 0.5", "from_numpy"]


@pytest.mark.slow  # the installed console script in a fresh process (5 s)
def test_console_script_check_exit_code(tmp_path):
    exe = Path(sys.executable).parent / ("graphprobe.exe" if os.name == "nt" else "graphprobe")
    if exe.is_file():
        cmd = [str(exe)]
    else:  # not installed as a console script: run what it would run
        cmd = [sys.executable, "-c", "from graphprobe._entry import main_entry; main_entry()"]
    done = subprocess.run(cmd + ["check", _sample("case4_numpy.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == EXIT_FINDINGS, done.stderr
    assert done.stdout.startswith("graphprobe:")
    assert "numpy cut at case4_numpy.py:26" in done.stdout
    assert "Traceback" not in done.stderr
    assert os.listdir(tmp_path) == []
