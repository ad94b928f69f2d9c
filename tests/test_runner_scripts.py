"""Hosting a user's script: the runner and the CLI in-process on small scripts.

A script that changes directory; ``sys.exit`` before the first backward; options after SCRIPT and
``--``; wrappers that leave the user's backward as it was (a generator of losses, a backward in
another thread, ``retain_graph=None`` with ``create_graph=True``); Ctrl-C after the first backward.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from graphprobe.cli import main
from graphprobe.errors import EXIT_BACKWARD_FAILED, EXIT_NO_BACKWARD, EXIT_SCRIPT

HEAD = """\
import os, sys, threading
import numpy as np
import torch
from torch import nn
torch.manual_seed(0)
net1 = nn.Linear(3, 3)
net2 = nn.Linear(3, 3)
x = torch.ones(4, 3)
"""


def _script(folder: Path, body: str, name: str = "s.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(HEAD + textwrap.dedent(body))
    return p


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# -- 1. a script that changes directory ---------------------------------------------------------

def test_script_that_changes_directory(tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _script(tmp_path / "proj", f"""\
        import traceback
        tmp = net1(x)
        os.chdir({str(elsewhere)!r})
        traceback.format_stack()  # as logging.exception does: linecache drops what no longer resolves
        arr = tmp.detach().numpy() * 0.5  # graphprobe: ignore
        loss = (tmp.sum() + net2(torch.from_numpy(arr)).sum())
        loss.backward()
        """)
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    rc, _, err = _cli(capsys, "render", "proj/s.py", "-o", "out.json", "-q")
    assert rc == 0, err
    assert os.getcwd() == str(tmp_path)  # restored
    assert sys.path == path_before  # the inserted entry is gone
    assert not (elsewhere / "out.json").exists()
    rep = json.loads((tmp_path / "out.json").read_text())
    assert len(rep["cuts"]) == 1
    cut = rep["cuts"][0]
    assert cut["ignored"] is True  # the comment was read although the cwd changed
    # Locations stay as the user gave the script: relative, as in the docs' pictures.
    assert cut["location"].startswith("proj/s.py:")


def test_default_output_goes_to_the_starting_folder(tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _script(tmp_path, f"""\
        os.chdir({str(elsewhere)!r})
        net1(x).sum().backward()
        """)
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", "s.py", "-q")
    assert rc == 0, err
    assert (tmp_path / "s.svg").is_file() and not (elsewhere / "s.svg").exists()
    assert os.getcwd() == str(tmp_path)


# -- 2. sys.exit before the first backward -------------------------------------------------------

def test_nonzero_exit_before_first_backward_is_a_script_error(tmp_path, monkeypatch, capsys):
    s = _script(tmp_path, """\
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("--epochs", type=int, default=1)
        p.parse_args()
        net1(x).sum().backward()
        """)
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", str(s), "-o", "out.json", "-q", "--bogus")
    assert rc == EXIT_SCRIPT == 3
    assert "s.py exited with status 2 before its first backward" in err
    assert "without calling backward" not in err
    assert not (tmp_path / "out.json").exists()


def test_exit_with_a_message_before_first_backward(tmp_path, monkeypatch, capsys):
    s = _script(tmp_path, 'sys.exit("no data found")\n')
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "check", str(s), "-q")
    assert rc == EXIT_SCRIPT
    assert "exited with status 1 before its first backward: no data found" in err


@pytest.mark.parametrize("code", ["0", "None", ""])
def test_clean_exit_before_first_backward_is_still_no_backward(tmp_path, monkeypatch, capsys, code):
    s = _script(tmp_path, f"sys.exit({code})\n")
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", str(s), "-o", "out.json", "-q")
    assert rc == EXIT_NO_BACKWARD == 4
    assert "without calling backward" in err


# -- 3. options after SCRIPT, and -- -------------------------------------------------------------

def test_double_dash_passes_our_option_names_to_the_script(tmp_path, monkeypatch, capsys):
    got = tmp_path / "argv.json"
    s = _script(tmp_path, f"""\
        import json
        json.dump(sys.argv[1:], open({str(got)!r}, "w"))
        net1(x).sum().backward()
        """)
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", str(s), "-o", "out.json", "-q", "--", "--depth", "50")
    assert rc == 0, err
    assert json.loads(got.read_text()) == ["--depth", "50"]
    assert (tmp_path / "out.json").is_file()
    # Without --, -o after SCRIPT is ours (the documented `graphprobe render cor.py -o cor.svg`).
    rc, _, err = _cli(capsys, "render", str(s), "--epochs", "1", "-o", "out2.json", "-q")
    assert rc == 0, err
    assert json.loads(got.read_text()) == ["--epochs", "1"]
    assert (tmp_path / "out2.json").is_file()


def test_render_help_says_where_our_options_are_taken(capsys):
    capsys.readouterr()
    assert main(["render", "--help"]) == 0
    out = capsys.readouterr().out
    assert "wherever they appear" in out and "after `--`" in out
    for opt in ("-o/--output", "--steps", "--title", "--budget", "--depth", "--expand",
                "--keep-running", "-q/--quiet", "--no-color"):
        assert opt in out


# -- 4. the wrappers leave the user's backward as it was -----------------------------------------

def test_generator_of_losses_reaches_the_real_backward(tmp_path, monkeypatch, capsys):
    got = tmp_path / "grads.txt"
    s = _script(tmp_path, f"""\
        loss1 = net1(x).sum()
        loss2 = net2(x).sum()
        torch.autograd.backward(l for l in (loss1, loss2))
        open({str(got)!r}, "w").write(f"{{net1.weight.grad is not None}} {{net2.weight.grad is not None}}")
        """)
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", str(s), "-o", "out.json", "-q")
    assert rc == 0, err
    assert got.read_text() == "True True"
    rep = json.loads((tmp_path / "out.json").read_text())
    assert len(rep["losses"]) == 2
    assert not [e for e in rep["errors"] if e["kind"] == "script_error"]


def test_the_first_thread_to_call_backward_is_the_one_captured(tmp_path, monkeypatch, capsys):
    # The thread trains first: its step is captured (its second round, once the recorder has
    # followed it there); the main thread's later backward is left alone.
    got = tmp_path / "thread.txt"
    s = _script(tmp_path, f"""\
        done = []
        def work():
            try:
                for _ in range(3):
                    net2(x).sum().backward()
                    done.append(1)
            except BaseException as e:
                done.append(type(e).__name__)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        open({str(got)!r}, "w").write(repr(done))
        for _ in range(3):
            net1(x).sum().backward()
        """)
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", str(s), "-o", "out.json", "-q")
    assert rc == 0, err
    assert not got.exists()  # the capture ended in the thread, and the script with it
    rep = json.loads((tmp_path / "out.json").read_text())
    assert len(rep["losses"]) == 1  # the thread's step only
    reached = set(rep["reaches"][rep["losses"][0]["name"]])
    assert {"net2.weight", "net2.bias"} <= reached and not reached & {"net1.weight", "net1.bias"}
    assert any("thread" in n for n in rep["notes"])


def test_retain_graph_none_follows_create_graph(tmp_path, monkeypatch, capsys):
    # a.backward(create_graph=True) keeps the graph (retain_graph defaults to create_graph), so it
    # is b.backward() that freed what c needs, not a.
    s = _script(tmp_path, """\
        h = net1(x)
        a = h.pow(2).sum()
        a.backward(create_graph=True)
        b = h.pow(3).sum()
        b.backward()
        c = h.exp().sum()
        c.backward()
        """)
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", str(s), "-o", "out.json", "-q")
    assert rc == EXIT_BACKWARD_FAILED, err
    rep = json.loads((tmp_path / "out.json").read_text())
    twice = [e for e in rep["errors"] if e["kind"] == "backward_twice"]
    assert len(twice) == 1
    assert twice[0]["freed_by"]["loss"] == "b"


def test_retain_helper_reads_each_signature():
    from graphprobe.run.capture import _retain

    # Tensor.backward(gradient, retain_graph, create_graph, inputs)
    assert _retain((), {}, 1, 2) is False
    assert _retain((), {"create_graph": True}, 1, 2) is True
    assert _retain((None, None, True), {}, 1, 2) is True
    assert _retain((None, False, True), {}, 1, 2) is False
    assert _retain((), {"retain_graph": True}, 1, 2) is True
    # autograd.grad(inputs, grad_outputs, retain_graph, create_graph)
    assert _retain(([],), {"create_graph": True}, 2, 3) is True
    assert _retain(([], None, None, True), {}, 2, 3) is True
    assert _retain(([], None, False, True), {}, 2, 3) is False


# -- 5. Ctrl-C ----------------------------------------------------------------------------------

def test_interrupt_after_first_backward_still_writes_the_report(tmp_path, monkeypatch, capsys):
    s = _script(tmp_path, """\
        net1(x).sum().backward()
        raise KeyboardInterrupt
        """)
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", str(s), "-o", "out.json", "-q")
    assert rc == 130
    assert "interrupted" in err
    rep = json.loads((tmp_path / "out.json").read_text())
    assert len(rep["losses"]) == 1
    assert any("interrupted" in n for n in rep["notes"])
    rc, out, _ = _cli(capsys, "check", str(s), "-q", "--no-color")
    assert rc == 130 and out.strip()


def test_interrupt_before_first_backward(tmp_path, monkeypatch, capsys):
    s = _script(tmp_path, "raise KeyboardInterrupt\n")
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(capsys, "render", str(s), "-o", "out.json", "-q")
    assert rc == 130 and "interrupted" in err
    assert not (tmp_path / "out.json").exists()
