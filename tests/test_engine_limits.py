"""The layout engine's address-space limit, seen from inside the engine: set on a started child
with ``prlimit`` before it is sent the graph (Linux), else by the child itself between fork and
exec, never above the hard limit, off with ``GRAPHPROBE_LAYOUT_MEMORY=0``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from graphprobe.render import engine as engine_mod
from graphprobe.render.engine import layout

resource = pytest.importorskip("resource", reason="address-space limits are POSIX only")

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses a script as a fake engine")

# Reads the first byte of the graph, then answers with its own soft RLIMIT_AS: by then the limit
# must be in place, since the graph is sent only after it is set.
_REPORTER = ("#!{python}\n"
             "import resource, sys\n"
             "sys.stdin.buffer.read(1)\n"
             "sys.stdout.write(str(resource.getrlimit(resource.RLIMIT_AS)[0]))\n")


@pytest.fixture
def reporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The reporting engine as ``$GRAPHPROBE_DOT``; returns the keyword arguments of every
    ``Popen`` that :func:`layout` starts."""
    engine = tmp_path / "limit-dot"
    engine.write_text(_REPORTER.format(python=sys.executable))
    engine.chmod(0o755)
    monkeypatch.setenv(engine_mod.ENGINE_ENV, str(engine))
    calls: list[dict[str, Any]] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_mod.subprocess, "Popen", popen)
    return calls


@pytest.mark.parametrize("late", [True, False], ids=["prlimit", "preexec_fn"])
def test_the_engine_runs_under_the_limit(reporter: list[dict[str, Any]], late: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if late and not hasattr(resource, "prlimit"):
        pytest.skip("resource.prlimit is Linux only")
    monkeypatch.setattr(engine_mod, "_late_limits", lambda: late)
    monkeypatch.setenv(engine_mod.MEMORY_ENV, "700")
    assert int(layout("digraph { a }", "svg")) == 700 * 2**20
    assert len(reporter) == 1
    # prlimit from here lets Python start the child without a preexec_fn (vfork: fast).
    assert (reporter[0]["preexec_fn"] is None) == late


def test_a_refused_prlimit_starts_a_child_that_limits_itself(reporter: list[dict[str, Any]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(resource, "prlimit"):
        pytest.skip("resource.prlimit is Linux only")
    real = resource.prlimit

    def refuse(pid: int, which: int, limits: Any = None) -> Any:
        if limits is not None:
            raise PermissionError(1, "Operation not permitted")  # as in some sandboxes
        return real(pid, which)

    monkeypatch.setattr(resource, "prlimit", refuse)
    monkeypatch.setattr(engine_mod, "_late_limits", lambda: True)
    monkeypatch.setenv(engine_mod.MEMORY_ENV, "700")
    assert int(layout("digraph { a }", "svg")) == 700 * 2**20
    assert [c["preexec_fn"] is None for c in reporter] == [True, False]


def test_zero_turns_the_limit_off(reporter: list[dict[str, Any]],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine_mod.MEMORY_ENV, "0")
    assert int(layout("digraph { a }", "svg")) == resource.getrlimit(resource.RLIMIT_AS)[0]
    assert reporter[0]["preexec_fn"] is None


def test_the_limit_stays_under_the_hard_limit() -> None:
    assert engine_mod._soft_limit(700, resource.RLIM_INFINITY) == 700
    assert engine_mod._soft_limit(700, 500) == 500
    assert engine_mod._soft_limit(300, 500) == 300


def test_an_engine_that_exits_at_once_is_no_error_of_the_limit(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A child gone before its limit is set (it read nothing): its own failure is reported."""
    quick = tmp_path / "quick-dot"
    quick.write_text("#!/bin/sh\necho 'no such format' >&2\nexit 2\n")
    quick.chmod(0o755)
    monkeypatch.setenv(engine_mod.ENGINE_ENV, str(quick))
    monkeypatch.setenv(engine_mod.MEMORY_ENV, "700")
    with pytest.raises(engine_mod.OutputError, match="no such format"):
        layout("digraph { a }", "svg")
