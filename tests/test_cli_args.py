"""How the command line is split between graphprobe and the script (graphprobe.cli.running):
argparse reads it all, SCRIPT and what follows as a remainder; our options after SCRIPT by their
exact names, until ``--``; everything else goes to the script, in order."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from graphprobe.cli import build_parser, main, parse_args


def _split(*argv: str) -> tuple[argparse.Namespace, list[str]]:
    args = parse_args(list(argv))
    return args, args.script_args


def _subparser(command: str) -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]


def test_the_readme_lines_keep_their_meaning() -> None:
    # README: `python -m graphprobe render samples/gru_unrolled.py 50 -o gru.json`
    args, theirs = _split("render", "samples/gru_unrolled.py", "50", "-o", "gru.json")
    assert (args.script, args.output, theirs) == ("samples/gru_unrolled.py", "gru.json", ["50"])
    args, theirs = _split("check", "samples/pseudo_lidar_fixed.py", "--baseline", "before.json")
    assert (args.baseline, theirs) == ("before.json", [])
    args, theirs = _split("render", "-o", "case4.svg", "samples/case4_numpy.py")
    assert (args.output, args.script, theirs) == ("case4.svg", "samples/case4_numpy.py", [])


def test_the_script_gets_every_other_argument_in_order() -> None:
    args, theirs = _split("render", "t.py", "--lr", "0.1", "-o", "x.json", "7", "--lr=3", "-1", "a b")
    assert args.output == "x.json"
    assert theirs == ["--lr", "0.1", "7", "--lr=3", "-1", "a b"]


def test_after_script_only_exact_names_are_ours() -> None:
    # argparse alone would read -optim as `-o ptim`, -qv as `-q -v`, --out as --output.
    args, theirs = _split("render", "t.py", "-optim", "adam", "-qv", "--out", "y", "--dep", "3", "-oq")
    assert theirs == ["-optim", "adam", "-qv", "--out", "y", "--dep", "3", "-oq"]
    assert args.output is None and not args.quiet and args.depth is None
    args, theirs = _split("render", "t.py", "--output=z.svg", "-o=w.svg", "--depth=2")
    assert (args.output, args.depth, theirs) == ("w.svg", 2, [])


def test_help_and_version_after_the_script_are_the_script_s() -> None:
    args, theirs = _split("check", "t.py", "--help", "-h", "--version")
    assert theirs == ["--help", "-h", "--version"]


def test_everything_after_double_dash_is_the_script_s() -> None:
    args, theirs = _split("render", "t.py", "-q", "--", "-o", "x.txt", "--depth", "50", "--")
    assert args.quiet and args.output is None and args.depth is None
    assert theirs == ["-o", "x.txt", "--depth", "50", "--"]
    # a -- before SCRIPT: SCRIPT is next, and every argument after it is the script's
    args, theirs = _split("render", "-o", "g.json", "--", "t.py", "-o", "x", "-q")
    assert (args.script, args.output, args.quiet, theirs) == ("t.py", "g.json", False, ["-o", "x", "-q"])


def test_options_before_and_after_the_script_add_up() -> None:
    args, theirs = _split("render", "--expand", "enc", "--steps", "3", "t.py", "--expand", "dec", "--steps", "2")
    assert (args.expand, args.steps, theirs) == (["enc", "dec"], 2, [])


def test_baseline_is_ours_under_check_only() -> None:
    assert _split("check", "t.py", "--baseline", "b.json")[0].baseline == "b.json"
    assert _split("render", "t.py", "--baseline", "b.json")[1] == ["--baseline", "b.json"]
    # once a hand-kept list named --color, which no parser defined: `check x.py --color` exited 2
    assert _split("check", "t.py", "--color")[1] == ["--color"]


@pytest.mark.parametrize("command", ["render", "check"])
def test_every_option_the_parser_defines_is_taken_after_the_script(command: str) -> None:
    # No list of our names is kept beside argparse's: each option it defines is ours after SCRIPT.
    for action in _subparser(command)._actions:
        if not action.option_strings or "-h" in action.option_strings:
            continue
        value = [] if action.nargs == 0 else ["3"]
        for name in action.option_strings:
            args, theirs = _split(command, "t.py", name, *value, "rest")
            assert theirs == ["rest"], (name, theirs)
            assert getattr(args, action.dest) not in (None, False, []), name


@pytest.mark.parametrize("argv, words", [
    (["render"], "required: SCRIPT"),
    (["check", "-q"], "required: SCRIPT"),
    (["render", "t.py", "-o"], "expected one argument"),
    (["render", "t.py", "--steps", "two"], "invalid int value"),
    (["render", "--bogus", "t.py"], "unrecognized arguments: --bogus"),
])
def test_a_bad_command_line_exits_2_with_usage(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and words in err and err.startswith("usage: graphprobe"), err


def test_bad_numbers_after_the_script_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "t.py", "--depth", "0"]) == 2
    assert capsys.readouterr().err == "graphprobe: --budget and --depth must be 1 or more\n"


def test_no_command_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "{render,check,show,diff}" in capsys.readouterr().err


def test_a_script_receives_exactly_its_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "args.py").write_text(
        "import sys, torch\n"
        "print('ARGS', sys.argv)\n"
        "x = torch.ones(2, requires_grad=True)\n"
        "(x * 2).sum().backward()\n")
    monkeypatch.chdir(tmp_path)
    argv0 = list(sys.argv)
    rc = main(["render", "args.py", "--lr", "0.1", "-optim", "adam", "-o", "a.json", "-q", "--", "-o", "b"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "ARGS ['args.py', '--lr', '0.1', '-optim', 'adam', '-o', 'b']" in out
    assert sorted(os.listdir(tmp_path)) == ["a.json", "args.py"]
    assert sys.argv == argv0
