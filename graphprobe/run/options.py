"""What to run and what came of it: :class:`RunOptions` in, :class:`RunResult` out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..report import Report

__all__ = ["RunOptions", "RunResult"]


@dataclass
class RunOptions:
    """What to run and how much of it to capture."""

    script: str
    args: list[str] = field(default_factory=list)
    steps: int = 1
    keep_running: bool = False
    progress: Callable[[str], None] | None = None


@dataclass
class RunResult:
    """The report, whether a backward failed, and how the script ended.

    ``children`` holds one ``(label, report)`` per child process that captured a step
    (``child1``, ``child2`` ... in start order); ``stopped_early`` is True when graphprobe ended
    the script after the capture, ``left_threads`` names its non-daemon threads still alive then.
    """

    report: Report
    backward_failed: bool = False
    script_exit: int | None = None
    stopped_early: bool = False
    interrupted: bool = False  # Ctrl-C after the first backward: the report covers what was captured
    children: list[tuple[str, Report]] = field(default_factory=list)
    left_threads: list[str] = field(default_factory=list)
