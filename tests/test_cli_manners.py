"""CLI manners: whole-sentence help, usage errors that exit 2, the script never overwritten, stdout
holding the report alone, no contradicting progress line, crashes of our own (70), Ctrl-C (130)."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import graphprobe.cli as cli
import graphprobe.cli.common
from graphprobe.cli import main
from graphprobe.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE

ROOT = Path(__file__).resolve().parent.parent
CASE4 = str(ROOT / "samples" / "case4_numpy.py")


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


# -- help ---------------------------------------------------------------------------------------

def test_top_level_help_lists_whole_sentences(capsys):
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name, summary in cli.SUMMARIES.items():
        assert summary.endswith(".") and summary[0].isupper()
        assert " ".join(summary.split()) in out, (name, out)
    assert "70" in out and "130" in out  # the exit codes are listed


@pytest.mark.parametrize("command", ["render", "check"])
def test_help_names_exactly_the_options_argparse_defines(command, capsys):
    # The help's list of graphprobe's options is written from the parser (once a hand-kept list
    # named --color, which no parser defined, and `check x.py --color` exited 2).
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    listed = out.split("their exact names:\n", 1)[1].split("\n", 2)
    named = {o for part in " ".join(listed[:2]).split(",") for o in part.strip().split("/") if o.startswith("-")}
    sub = cli.build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    defined = {o for a in sub._actions for o in a.option_strings} - {"-h", "--help"}
    assert named == defined, named ^ defined
    assert "--color" not in defined


def test_check_keeps_the_report_it_gated_on(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.chdir(tmp_path)
    assert main(["check", CASE4, "-o", "gate.json", "-q"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("graphprobe: 2 losses") and "numpy cut at case4_numpy.py:26" in out
    d = json.loads((tmp_path / "gate.json").read_text())
    assert d["findings"]["error"] >= 1 and d["schema"] == 1
    assert os.listdir(tmp_path) == ["gate.json"]
    (tmp_path / "s.py").write_text(Path(CASE4).read_text())
    assert main(["check", "s.py", "-o", "s.py", "-q"]) == 2
    assert "is the script" in capsys.readouterr().err


# -- usage errors -------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path, monkeypatch):
    script = tmp_path / "s.py"
    script.write_text(Path(CASE4).read_text())
    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _usage(capsys, *argv: str) -> str:
    rc = main(list(argv))
    err = capsys.readouterr().err
    assert rc == EXIT_USAGE == 2, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("graphprobe:"), err
    return err


@pytest.mark.parametrize("output", ["s.py", "./d/../s.py", "{abs}", "link.svg", "hard.svg"])
def test_output_that_is_the_script_is_refused(capsys, folder, output):
    (folder / "link.svg").symlink_to(folder / "s.py")
    os.link(folder / "s.py", folder / "hard.svg")
    before = (folder / "s.py").read_bytes()
    err = _usage(capsys, "render", "s.py", "-o", output.format(abs=folder / "s.py"), "-q")
    assert "is the script" in err and "-o s.graph.svg" in err and "not run" in err
    assert (folder / "s.py").read_bytes() == before
    assert (folder / "link.svg").is_symlink()


def test_default_output_that_is_the_script_is_refused(capsys, folder):
    # A script named graph.svg, run from its folder: the default output is graph.svg.
    os.rename(folder / "s.py", folder / "graph.svg")
    before = (folder / "graph.svg").read_bytes()
    err = _usage(capsys, "render", "graph.svg", "-q")
    assert "default output graph.svg is the script" in err
    assert (folder / "graph.svg").read_bytes() == before


def test_folder_and_unknown_extension_say_what_to_do(capsys, folder):
    assert "d/graph.svg" in _usage(capsys, "render", "s.py", "-o", "d", "-q")
    err = _usage(capsys, "render", "s.py", "-o", "out.xyz", "-q")
    assert ".svg" in err and "-o -" in err
    assert sorted(os.listdir(folder)) == ["d", "s.py"]


def test_write_report_refuses_an_unknown_extension_as_usage(tmp_path):
    from graphprobe.errors import UsageError

    with pytest.raises(UsageError) as e:
        cli.write_report(object(), str(tmp_path / "x.bmp"))  # type: ignore[arg-type]
    assert e.value.exit_code == 2
    assert str(e.value).count("\n") == 0 and ".svg" in str(e.value) and "-o -" in str(e.value)
    assert os.listdir(tmp_path) == []


# -- stdout holds the report alone --------------------------------------------------------------

TALKY = (
    "import sys, torch\n"
    "print('SCRIPT SAYS HI')\n"
    "w = torch.nn.Parameter(torch.ones(2))\n"
    "(w * 2).sum().backward()\n"
    "print('SCRIPT SAYS BYE')\n"
)


def _swap_streams(monkeypatch) -> tuple[io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    return out, err


@pytest.mark.parametrize("argv", [["render", "-o", "-"], ["check"], ["render"]])
def test_report_alone_on_stdout_script_output_on_stderr(tmp_path, monkeypatch, argv):
    (tmp_path / "talky.py").write_text(TALKY)
    monkeypatch.chdir(tmp_path)
    out, err = _swap_streams(monkeypatch)
    cmd, *rest = argv
    rc = main([cmd, "talky.py", *rest, "-q"])
    assert rc == 0, err.getvalue()
    assert sys.stdout is out  # put back
    assert "SCRIPT SAYS HI" in err.getvalue() and "SCRIPT SAYS HI" not in out.getvalue()
    assert out.getvalue().startswith("graphprobe: 1 loss")


def test_script_output_stays_on_stdout_when_the_report_goes_to_a_file(tmp_path, monkeypatch):
    (tmp_path / "talky.py").write_text(TALKY)
    monkeypatch.chdir(tmp_path)
    out, err = _swap_streams(monkeypatch)
    assert main(["render", "talky.py", "-o", "g.json", "-q"]) == 0, err.getvalue()
    assert "SCRIPT SAYS HI" in out.getvalue()


@pytest.mark.parametrize("body, code", [
    ("raise ValueError('before')\n", 3),
    ("raise KeyboardInterrupt\n", EXIT_INTERRUPTED),
    ("sys.stdout = open(os.devnull, 'w')\nraise SystemExit(4)\n", 3),
])
def test_stdout_is_put_back_on_every_way_out(tmp_path, monkeypatch, body, code):
    (tmp_path / "s.py").write_text("import os, sys\nprint('x')\n" + body)
    monkeypatch.chdir(tmp_path)
    out, err = _swap_streams(monkeypatch)
    assert main(["render", "s.py", "-o", "-", "-q"]) == code, err.getvalue()
    assert sys.stdout is out and out.getvalue() == ""


def test_no_progress_line_contradicts_the_error(tmp_path, monkeypatch):
    (tmp_path / "s.py").write_text("import torch\nraise RuntimeError('no data')\n")
    monkeypatch.chdir(tmp_path)
    out, err = _swap_streams(monkeypatch)
    assert main(["render", "s.py", "-o", "g.svg"]) == 3
    text = err.getvalue()
    assert "before its first backward" in text
    assert "walking" not in text, text


# -- a crash of our own -------------------------------------------------------------------------

def _boom(*args, **kwargs):
    raise TypeError("an internal bug\nsecond line")


def test_internal_crash_exits_70_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRAPHPROBE_DEBUG", raising=False)
    monkeypatch.setattr(graphprobe.cli.common, "write_report", _boom)
    assert main(["render", CASE4, "-o", "g.svg", "-q"]) == EXIT_INTERNAL == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "bug in graphprobe" in err and "not in your script" in err
    assert "TypeError: an internal bug" in err and "report it" in err and "GRAPHPROBE_DEBUG=1" in err


def test_internal_crash_traceback_with_graphprobe_debug(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRAPHPROBE_DEBUG", "1")
    monkeypatch.setattr(graphprobe.cli.common, "write_report", _boom)
    assert main(["render", CASE4, "-o", "g.svg", "-q"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "_boom" in err


# -- Ctrl-C -------------------------------------------------------------------------------------

def test_ctrl_c_while_torch_imports_is_one_line(tmp_path):
    # A stand-in torch whose import is interrupted: deterministic, unlike a timed signal.
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise KeyboardInterrupt\n")
    (tmp_path / "s.py").write_text("import torch\n")
    env = _env()
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + str(fake)
    for cmd in ([sys.executable, "-m", "graphprobe"],
                [sys.executable, "-c", "from graphprobe._entry import main_entry; main_entry()"]):
        done = subprocess.run(cmd + ["render", "s.py", "-o", "g.svg"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 130, done.stderr
        assert done.stderr == "graphprobe: interrupted\n", done.stderr


SWALLOWING_TORCH = (
    "import os, signal, time\n"
    "try:\n"
    "    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands while torch imports...\n"
    "    time.sleep(1)\n"
    "except KeyboardInterrupt:\n"
    "    pass  # ...and torch's start-up swallows it (as its C++ does around numpy's import)\n"
)


def test_ctrl_c_swallowed_while_torch_imports_still_ends_the_run(tmp_path):
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(SWALLOWING_TORCH)
    (tmp_path / "s.py").write_text("print('THE SCRIPT RAN')\n")
    env = _env()
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + str(fake)
    done = subprocess.run([sys.executable, "-m", "graphprobe", "render", "s.py", "-o", "g.svg"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "graphprobe: interrupted\n" and "THE SCRIPT RAN" not in done.stdout


def test_a_swallowed_ctrl_c_stops_before_the_script(tmp_path, monkeypatch, capsys):
    from graphprobe import _entry

    (tmp_path / "s.py").write_text("print('THE SCRIPT RAN')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_entry.startup, "interrupted", True)
    assert main(["render", "s.py", "-o", "g.svg"]) == 130
    out, err = capsys.readouterr()
    assert err == "graphprobe: interrupted\n" and "THE SCRIPT RAN" not in out


@pytest.mark.slow  # a fresh interpreter imports torch and runs a script: a few seconds
def test_python_s_own_handler_is_back_when_the_script_runs(tmp_path):
    (tmp_path / "s.py").write_text(
        "import signal, torch\n"
        "print('HANDLER', signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
        "w = torch.nn.Parameter(torch.ones(1)); (w * 2).sum().backward()\n")
    done = subprocess.run([sys.executable, "-m", "graphprobe", "render", "s.py", "-o", "g.json", "-q"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HANDLER True" in done.stdout


def test_importing_graphprobe_does_not_import_torch():
    code = "import sys, graphprobe, graphprobe.cli; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.slow  # a real process and a real SIGINT (5 s)
def test_real_sigint_gives_130_and_one_line(tmp_path):
    # The script never calls backward; SIGINT lands while torch imports or while it sleeps.
    (tmp_path / "s.py").write_text("import time\nimport torch\nwhile True:\n    time.sleep(0.01)\n")
    p = subprocess.Popen([sys.executable, "-m", "graphprobe", "render", "s.py", "-o", "g.svg", "-q"],
                         cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # 130, or death by SIGINT (which a shell reports as 130 too): when the interrupt lands in
    # code torch's C++ start-up runs through PyRun_String, CPython marks it unhandled although
    # graphprobe catches it, and then ends the process with SIGINT at exit, after our one line.
    assert p.returncode in (130, -signal.SIGINT), err
    assert err == "graphprobe: interrupted\n", err
    assert os.listdir(tmp_path) == ["s.py"]
