"""The errors graphprobe raises: each says what was wrong and what to do, and carries an exit code."""
from __future__ import annotations

__all__ = [
    "GraphprobeError",
    "ProbeInputError",
    "LayoutEngineMissing",
    "ScriptError",
    "NoBackwardError",
    "OutputError",
    "LayoutTimeout",
    "EXIT_FINDINGS",
    "EXIT_USAGE",
    "EXIT_SCRIPT",
    "EXIT_NO_BACKWARD",
    "EXIT_OUTPUT",
    "EXIT_BACKWARD_FAILED",
]

#: ``graphprobe check`` found an error-severity finding.
EXIT_FINDINGS = 1
#: Bad command line or bad arguments to :func:`graphprobe.probe`.
EXIT_USAGE = 2
#: The script is missing, does not compile, or raised before its first backward.
EXIT_SCRIPT = 3
#: The script ran to its end without calling backward.
EXIT_NO_BACKWARD = 4
#: The output could not be written (unwritable path, unknown extension, no layout engine).
EXIT_OUTPUT = 5
#: The script's backward raised; the report was still written.
EXIT_BACKWARD_FAILED = 6


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


class LayoutTimeout(OutputError):
    """The layout engine ran past its time limit (the graph is too big to draw whole)."""


class ScriptError(GraphprobeError):
    """The user's script is missing, has a syntax error, or raised before its first backward."""

    exit_code = EXIT_SCRIPT


class NoBackwardError(GraphprobeError):
    """The user's script ran to its end without calling backward or autograd.grad."""

    exit_code = EXIT_NO_BACKWARD
