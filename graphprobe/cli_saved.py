"""Saved reports on the command line: loading one (``graphprobe show``), comparing two
(``graphprobe diff``), and the baseline of ``check --baseline``. Nothing here runs a script or
imports torch, and nothing imports :mod:`graphprobe.cli` (which imports this).

A file that is missing, unreadable, not JSON, not a graphprobe report, or of a schema this
graphprobe does not read is a usage error (exit 2, one line).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from .errors import EXIT_FINDINGS, UsageError

__all__ = ["load_report_dict", "load_report", "diff", "baseline_diff"]


def load_report_dict(path: str) -> dict[str, Any]:
    """The schema-1 report dict saved at ``path`` (``graphprobe render x.py -o path.json``).

    Raises
    ------
    UsageError
        ``path`` is missing or unreadable, is not JSON, is not a graphprobe report, or is of
        another schema version.
    """
    from .report import SCHEMA_VERSION

    if os.path.isdir(path):
        raise UsageError(f"graphprobe: {path} is a folder, not a saved report. Give the .json that "
                         "`graphprobe render SCRIPT -o report.json` wrote.")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UsageError(f"graphprobe: no such report: {path}. Save one with "
                         f"`graphprobe render SCRIPT -o {path}`.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"graphprobe: cannot read the report {path}: {e}.") from None
    try:
        d = json.loads(text)
    except ValueError as e:
        raise UsageError(f"graphprobe: {path} is not a graphprobe report (not JSON: {e}). "
                         "Give the .json that `graphprobe render SCRIPT -o report.json` wrote.") from None
    if not isinstance(d, dict) or "schema" not in d or not isinstance(d.get("nodes"), list):
        raise UsageError(f"graphprobe: {path} is not a graphprobe report (no \"schema\" and \"nodes\"). "
                         "Give the .json that `graphprobe render SCRIPT -o report.json` wrote.")
    if d["schema"] != SCHEMA_VERSION:
        raise UsageError(f"graphprobe: {path} is a report of schema {d['schema']!r}; this graphprobe "
                         f"reads schema {SCHEMA_VERSION}. Re-render it with this version.")
    return d


def load_report(path: str) -> Any:
    """The :class:`~graphprobe.Report` saved at ``path``, rebuilt (see :func:`load_report_dict`)."""
    from .report import Report

    d = load_report_dict(path)
    try:
        return Report.from_dict(d)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise UsageError(f"graphprobe: {path} is not a graphprobe report that can be read back "
                         f"({type(e).__name__}: {e}).") from None


def diff(old_path: str, new_path: str) -> int:
    """``graphprobe diff``: print what changed from ``old_path`` to ``new_path``.

    Returns 1 when a loss lost a parameter it used to reach, else 0.
    """
    from .analysis.diff import diff_reports
    from .render.diff import render_diff

    old, new = load_report_dict(old_path), load_report_dict(new_path)
    d = diff_reports(old, new)
    sys.stdout.write(render_diff(d))
    return EXIT_FINDINGS if d.regressed else 0


def baseline_diff(baseline: dict[str, Any], report: Any) -> tuple[str, bool]:
    """The diff text from a baseline dict to this run's report, and whether it regressed."""
    from .analysis.diff import diff_reports
    from .render.diff import render_diff

    d = diff_reports(baseline, report.to_dict())
    return render_diff(d), d.regressed
