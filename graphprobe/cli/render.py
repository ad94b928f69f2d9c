"""``graphprobe render SCRIPT [ARGS ...]``: run a script and write the graph of its first step."""
from __future__ import annotations

import argparse

from . import common, running

__all__ = ["NAME", "SUMMARY", "HELP", "add_parser", "add_options", "run"]

NAME = "render"
SUMMARY = "Run a script and write the graph of its first training step, with every cut marked."

HELP = """\
Run SCRIPT as `python SCRIPT ARGS...` would, record where its autograd graph is cut, and write
the graph of its first training step.

example:
  graphprobe render cor.py -o cor.svg
  graphprobe render train.py --epochs 1 -o graph.json     # script args pass through
  graphprobe render train.py -- -o this_goes_to_the_script --depth 50

graphprobe's own options are taken before SCRIPT, and after it wherever they appear, by
their exact names:
{ours}
Every other argument after SCRIPT goes to the script. To give the script an option that has
one of these names, put it after `--`: everything after `--` goes to the script untouched.

The output format follows the extension, one of
  {exts}
and `-o -` prints the text report. Without -o, SCRIPT's name with .svg is written in the
current folder and the text report is printed. Whenever the report is printed, the script's
own output goes to stderr, so stdout holds the report alone. An output that is SCRIPT itself
(by any path) is refused.
"""


def add_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """``render``'s own options (on both of its parsers, see :mod:`graphprobe.cli.running`)."""
    return [p.add_argument("-o", "--output",
                           help=f"output file ({common.extensions_text()}) or - for the text report"),
            *common.add_picture_options(p), *running.add_run_options(p)]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``render`` to the subcommands ``sub``."""
    return running.add_script_parser(sub, NAME, SUMMARY, HELP, add_options)


def run(args: argparse.Namespace, rank: int | None, tag: str) -> int:
    """Run the script; write its report unless ``-o -``; print the text report when it goes to stdout.

    Returns 0 once the report is written (6 when the script's backward raised, 130 on Ctrl-C).
    """
    output = args.output
    where = running.prepare(args, to_file=output != "-", on_stdout=not output or output == "-", rank=rank)
    return running.execute(args, where, tag, judge=lambda report, lead: 0)
