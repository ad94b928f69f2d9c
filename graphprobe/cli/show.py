"""``graphprobe show REPORT.json``: re-render a saved report to any format, without rerunning."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError
from . import common, saved

__all__ = ["NAME", "SUMMARY", "HELP", "add_parser", "run"]

NAME = "show"
SUMMARY = "Re-render a saved JSON report to any output format, without running the script again."

HELP = """\
Re-render a report saved as JSON (`graphprobe render SCRIPT -o report.json`) without running the
script again: the same bytes as `graphprobe render` writes for that run.

example:
  graphprobe render train.py -o run.json     # run once
  graphprobe show run.json -o run.svg        # then any picture, as often as you like
  graphprobe show run.json --depth 1 -o modules.html

The output format follows the extension, one of
  {exts}
and without -o (or with `-o -`) the text report is printed.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``show`` to the subcommands ``sub``: no script, plain argparse."""
    s = sub.add_parser(NAME, description=HELP.format(exts=common.extensions_text()), help=SUMMARY,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("report", help="a report saved with `graphprobe render SCRIPT -o report.json`")
    s.add_argument("-o", "--output", help=f"output file ({common.extensions_text()}) or - for the text report")
    common.add_picture_options(s)
    s.add_argument("--no-color", action="store_true", help="no colours in the text report")
    return s


def _check_output(output: str, report: str) -> None:
    """Refuse, before the report is read, an output that cannot be written or is the report."""
    common.output_renderer(output)
    if os.path.isdir(output):  # a folder is refused as a folder, before it is compared
        common.check_output_folder(output)
    if common.same_file(output, report):
        raise UsageError(f"graphprobe: -o {output} is the report being shown, which graphprobe never "
                         "overwrites. Give another file.")
    common.check_output_folder(output)


def run(args: argparse.Namespace, rank: int | None, tag: str) -> int:
    """The saved report, rebuilt and written (or printed) as ``render`` would write it; 0."""
    output = args.output
    to_file = bool(output) and output != "-"
    if to_file:
        _check_output(output, args.report)
    report = saved.load_report(args.report)
    if not to_file:
        sys.stdout.write(report.to_text(color=common.use_color(args)))
    else:
        common.write_report(report, output, **common.picture_options(args))
    return 0
