"""The errors graphprobe raises: each says what was wrong and what to do, and carries an exit code."""
from __future__ import annotations

__all__ = [
    "GraphprobeError",
    "ProbeInputError",
    "LayoutEngineMissing",
    "ScriptError",
    "NoBackwardError",
    "OutputError",
    "UsageError",
    "LayoutTimeout",
    "EXIT_FINDINGS",
    "EXIT_USAGE",
    "EXIT_SCRIPT",
    "EXIT_NO_BACKWARD",
    "EXIT_OUTPUT",
    "EXIT_BACKWARD_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "BUG_REPORT",
]

#: ``graphprobe check`` found an error-severity finding.
EXIT_FINDINGS = 1
#: Bad command line or bad arguments to :func:`graphprobe.probe`.
EXIT_USAGE = 2
#: The script is missing, does not compile, or raised before its first backward.
EXIT_SCRIPT = 3
#: The script ran to its end without calling backward.
EXIT_NO_BACKWARD = 4
#: The output could not be written (unwritable path, a folder that does not exist, no layout engine).
EXIT_OUTPUT = 5
#: The script's backward raised; the report was still written.
EXIT_BACKWARD_FAILED = 6
#: graphprobe itself crashed (a bug in graphprobe, not in the script): ``EX_SOFTWARE`` of
#: sysexits.h. Never 1, which means "check found an error".
EXIT_INTERNAL = 70
#: Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130

#: Where a crash of graphprobe itself should be reported. The project has no public tracker yet
#: (no URL is given rather than a made-up one), so this names what to send and to whom.
BUG_REPORT = ("please report it to graphprobe's maintainers (the issue tracker of the repository "
              "you installed it from) with the output of GRAPHPROBE_DEBUG=1 and the same command")


class GraphprobeError(Exception):
    """Base class: a message meant for a person, and the CLI's exit code for it."""

    exit_code: int = EXIT_USAGE


class ProbeInputError(GraphprobeError, TypeError):
    """``probe()`` was handed something it cannot walk (nothing, a non-tensor, a no_grad tensor)."""

    exit_code = EXIT_USAGE


class LayoutEngineMissing(GraphprobeError):
    """Neither a system ``dot`` nor the ``graphviz-pure`` command could be found."""

    exit_code = EXIT_OUTPUT


class OutputError(GraphprobeError):
    """An output file could not be written, or its extension names no known format."""

    exit_code = EXIT_OUTPUT


class UsageError(GraphprobeError):
    """A bad command line: an unknown output format, an output that is a folder or the script."""

    exit_code = EXIT_USAGE


class LayoutTimeout(OutputError):
    """The layout engine ran past its time limit (the graph is too big to draw whole)."""


class ScriptError(GraphprobeError):
    """The user's script is missing, has a syntax error, or raised before its first backward."""

    exit_code = EXIT_SCRIPT


class NoBackwardError(GraphprobeError):
    """The user's script ran to its end without calling backward or autograd.grad."""

    exit_code = EXIT_NO_BACKWARD


class _GraphprobeBug(BaseException):
    """graphprobe's own processing failed while the script ran (the cause is the real error).

    A BaseException, so neither the script's ``except Exception`` nor the runner's handling of
    the script's errors takes it for the script's: ``run_script`` re-raises the cause, and the
    CLI reports it as graphprobe's crash (exit 70). It lives here, low, so that the recorder
    (:mod:`graphprobe.record`) can raise it without importing the run that imports it.
    """
