"""CLI options: --version, help examples, colours only on a TTY without NO_COLOR, bad numbers."""
from __future__ import annotations

import io
import sys

import pytest

import graphprobe
from graphprobe.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        from graphprobe.cli import build_parser

        build_parser().parse_args(["--version"])
    assert e.value.code == 0
    assert main(["--version"]) == 0
    assert graphprobe.__version__ in capsys.readouterr().out


@pytest.mark.parametrize("cmd", ["render", "check"])
def test_each_subcommand_help_has_an_example(cmd, capsys):
    assert main([cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"graphprobe {cmd} " in out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _check_output(monkeypatch, sample, tty: bool, no_color: bool) -> str:
    buf = _Tty() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stdout", buf)
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    main(["check", sample("case4_numpy.py"), "-q"])
    return buf.getvalue()


def test_colours_on_a_tty_only(monkeypatch, sample):
    assert "\033[" in _check_output(monkeypatch, sample, tty=True, no_color=False)
    assert "\033[" not in _check_output(monkeypatch, sample, tty=False, no_color=False)
    assert "\033[" not in _check_output(monkeypatch, sample, tty=True, no_color=True)


@pytest.mark.parametrize("flag", [["--budget", "0"], ["--depth", "0"], ["--steps", "0"]])
def test_bad_numbers_are_usage_errors(flag, sample, capsys):
    assert main(["render", sample("case1_sum.py"), "-o", "-", *flag]) == 2
    assert "must be 1 or more" in capsys.readouterr().err
