"""``graphprobe diff OLD.json NEW.json``: what changed between two saved reports; exit 1 on a loss
that lost a parameter it used to reach."""
from __future__ import annotations

import argparse
import sys

from ..errors import EXIT_FINDINGS
from . import saved

__all__ = ["NAME", "SUMMARY", "HELP", "add_parser", "run"]

NAME = "diff"
SUMMARY = "Compare two saved JSON reports and exit 1 when a loss lost a parameter it used to reach."

HELP = """\
Compare two reports saved as JSON: which loss gained or lost which parameter, which cuts
appeared or went, which losses and parameters were added or removed. Exit 1 when a loss lost a
parameter it used to reach (a parameter removed from the model is listed, not counted), else 0.

example:
  graphprobe render train.py -o before.json    # on main
  graphprobe render train.py -o after.json     # on the branch
  graphprobe diff before.json after.json || echo "this change cut a loss off a parameter"
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``diff`` to the subcommands ``sub``: two saved reports, plain argparse."""
    d = sub.add_parser(NAME, description=HELP, help=SUMMARY, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("old", help="the baseline report (JSON)")
    d.add_argument("new", help="the report to judge against it (JSON)")
    return d


def run(args: argparse.Namespace, rank: int | None, tag: str) -> int:
    """Print what changed from ``args.old`` to ``args.new``.

    Returns 1 when a loss lost a parameter it used to reach, else 0.
    """
    from ..analysis.diff import diff_reports
    from ..render.diff import render_diff

    old, new = saved.load_report_dict(args.old), saved.load_report_dict(args.new)
    d = diff_reports(old, new)
    sys.stdout.write(render_diff(d))
    return EXIT_FINDINGS if d.regressed else 0
