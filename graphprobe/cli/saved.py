"""Saved reports on the command line: reading one back (``show``, ``diff``) and the baseline of
``check --baseline``. Nothing here runs a script or imports torch.

A file that is missing, unreadable, not JSON, not a graphprobe report, or of a schema this
graphprobe does not read is a usage error (exit 2, one line).
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..model.report import ReportData
    from ..report import Report

__all__ = ["load_report_dict", "load_report", "baseline_diff"]


def load_report_dict(path: str) -> dict[str, Any]:
    """The schema-1 report dict saved at ``path`` (``graphprobe render x.py -o path.json``).

    Raises
    ------
    UsageError
        ``path`` is missing or unreadable, is not JSON, is not a graphprobe report, or is of
        another schema version.
    """
    from ..model.version import SCHEMA_VERSION

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


def load_report(path: str) -> Report:
    """The :class:`~graphprobe.Report` saved at ``path``, rebuilt (see :func:`load_report_dict`)."""
    from ..report import Report

    d = load_report_dict(path)
    try:
        return Report.from_dict(d)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise UsageError(f"graphprobe: {path} is not a graphprobe report that can be read back "
                         f"({type(e).__name__}: {e}).") from None


def baseline_diff(baseline: dict[str, Any], report: ReportData) -> tuple[str, bool]:
    """The diff text from a baseline dict to this run's report, and whether it regressed."""
    from ..analysis.diff import diff_reports
    from ..render.diff import render_diff

    d = diff_reports(baseline, report.to_dict())
    return render_diff(d), d.regressed
