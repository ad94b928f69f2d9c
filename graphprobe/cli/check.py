"""``graphprobe check SCRIPT [ARGS ...]``: run a script, print the text report, gate CI on it."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import EXIT_FINDINGS
from . import common, running, saved

if TYPE_CHECKING:
    from ..report import Report

__all__ = ["NAME", "SUMMARY", "HELP", "add_parser", "add_options", "run"]

NAME = "check"
SUMMARY = "Run a script, print the text report, and exit 1 when a finding is an error."

HELP = """\
Run SCRIPT like `graphprobe render` and print the text report. Exit 1 when a finding has
severity error (a cut between trainable modules, an optimizer-held parameter no loss reaches, a
backward that will fail), else 0: use it to gate CI.

example:
  graphprobe check cor.py && echo "gradient flows"
  graphprobe check cor.py > report.txt     # the report alone; the script's prints go to stderr
  graphprobe check cor.py -o report.json   # also keep the report of the run it gated on

As with render, graphprobe's own options are taken before SCRIPT, and after it wherever they
appear, by their exact names:
{ours}
Everything after `--` goes to the script untouched.

With --baseline OLD.json (a report saved by `graphprobe render SCRIPT -o OLD.json` before a
change), the diff from OLD.json to this run is printed after the report, and check also exits 1
when a loss lost a parameter it used to reach (see `graphprobe diff`).
  graphprobe check train.py --baseline main.json
"""


def add_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """``check``'s own options (on both of its parsers, see :mod:`graphprobe.cli.running`)."""
    # a CI gate may keep the report of the run it gated on
    return [p.add_argument("-o", "--output",
                           help=f"also write the report to this file ({common.extensions_text()})"),
            *common.add_picture_options(p), *running.add_run_options(p),
            p.add_argument("--baseline", metavar="OLD.json",
                           help="a report saved before a change: print the diff to this run and also "
                                "exit 1 when a loss lost a parameter it used to reach")]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``check`` to the subcommands ``sub``."""
    return running.add_script_parser(sub, NAME, SUMMARY, HELP, add_options)


def run(args: argparse.Namespace, rank: int | None, tag: str) -> int:
    """Run the script and print the text report; write it too with ``-o FILE``.

    Returns 1 when a finding has severity error or (``--baseline``) a loss lost a parameter it
    used to reach, else 0 (6 when the script's backward raised, 130 on Ctrl-C).
    """
    output = args.output
    where = running.prepare(args, to_file=output is not None and output != "-", on_stdout=True, rank=rank)
    # Read before the script runs: a bad baseline wastes no run.
    baseline = saved.load_report_dict(args.baseline) if args.baseline else None

    def judge(report: Report, lead: bool) -> int:
        code = EXIT_FINDINGS if not report.ok else 0
        if baseline is not None:
            text, regressed = saved.baseline_diff(baseline, report)
            if lead:
                sys.stdout.write("\n" + text)
            if regressed:
                code = EXIT_FINDINGS
        return code

    return running.execute(args, where, tag, judge)
