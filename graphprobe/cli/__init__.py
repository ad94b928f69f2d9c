"""The command line: ``graphprobe render``, ``check``, ``show`` and ``diff``; ``main(argv) -> int``.

One module per subcommand (:mod:`.render`, :mod:`.check`, :mod:`.show`, :mod:`.diff`), each with
its help text, its ``add_parser(sub)`` and its ``run(args, rank, tag) -> int``; what ``render``
and ``check`` share (SCRIPT and its arguments, running it) is :mod:`.running`, the picture
options and the output writing (through :mod:`graphprobe.render.registry`) are :mod:`.common`,
and reading saved reports back is :mod:`.saved`. ``show`` re-renders a saved JSON report and
``diff`` compares two; neither runs a script. How SCRIPT's arguments are told from graphprobe's
options: see :mod:`graphprobe.cli.running`.

Exit codes (see :mod:`graphprobe.errors`): 0 fine; 1 ``check`` found an error-severity finding,
or (``diff``, ``check --baseline``) a loss lost a parameter it used to reach; 2 bad usage (an
unknown output extension, an output that is a folder or the script itself, a saved report that is
missing, not a graphprobe report, or of an unknown schema version);
3 the script is missing, broken, or raised (or exited with a non-zero status) before its first
backward; 4 the script never called backward; 5 the output could not be written; 6 the
script's backward raised (the report is still written); 70 graphprobe itself crashed (a bug in
graphprobe; the traceback is shown with ``GRAPHPROBE_DEBUG=1``); 130 interrupted (after the
first backward, the report of what was captured is still written). A script that raises after
its first backward has had its step captured: the report is written and carries the error as a
``script_error`` finding (a DDP unused-parameter error that the report's unreached parameters
explain becomes a note), and ``render`` exits 0 (``check`` exits 1, since the finding is an error).

When graphprobe prints the text report on stdout (``check``, ``render -o -``, ``render`` without
``-o``), the script's own ``sys.stdout`` is sent to stderr while it runs, so that stdout holds the
report alone (``graphprobe check x.py > report.txt``).

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank runs the script and writes its own file,
``.rank{RANK}`` put before the extension (``-o out.json`` gives ``out.rank0.json``,
``out.rank1.json`` ...); only rank 0 prints the text report and progress, and any rank prints
what goes wrong with it, tagged with its rank.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

# Nothing here imports torch at module level: the console entry point catches a Ctrl-C that
# lands while torch is importing (see graphprobe._entry).
from .. import __version__
# The start-up state lives low, in _startup: the console entry (_entry) imports this package,
# so nothing here imports _entry.
from .._startup import run_entry as _run_entry
from .._startup import startup as _startup
from ..errors import BUG_REPORT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, GraphprobeError
from ..render.registry import renderers
from . import check, common, diff, render, running, show
from .common import write_report
from .running import LEFT_THREADS as _LEFT_THREADS  # read by graphprobe._startup at exit

__all__ = ["main", "main_entry", "build_parser", "parse_args", "write_report", "FORMATS", "SUMMARIES"]

#: Output extension -> the name of its renderer (:mod:`graphprobe.render.registry`).
FORMATS = {ext: r.name for r in renderers() for ext in r.extensions}

_COMMANDS = (render, check, show, diff)

#: The one-sentence summaries `graphprobe --help` lists (the descriptions are too long).
SUMMARIES = {c.NAME: c.SUMMARY for c in _COMMANDS}

EXIT_HELP = """\
example: graphprobe render cor.py -o cor.svg

exit codes: 0 fine; 1 check found an error-severity finding, or diff (check --baseline) found
a loss that lost a parameter it used to reach; 2 bad usage (also a saved report that is missing,
not a graphprobe report, or of an unknown schema); 3 the script is missing, broken or raised
before its first backward; 4 it never called backward; 5 the output could not be written; 6 its
backward raised (the report is still written); 70 graphprobe itself crashed (a bug in
graphprobe: GRAPHPROBE_DEBUG=1 shows the traceback); 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line's parser: ``--version`` and the four subcommands."""
    p = argparse.ArgumentParser(
        prog="graphprobe",
        description="Show where a PyTorch autograd graph is connected, where it is cut, and why.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"graphprobe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{" + ",".join(SUMMARIES) + "}")
    for command in _COMMANDS:
        command.add_parser(sub).set_defaults(run=command.run)
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed: ``args.command``, ``args.run``, and for ``render``/``check`` ``args.script``
    and ``args.script_args`` (see :mod:`graphprobe.cli.running`).

    Raises
    ------
    SystemExit
        argparse's exit: a bad command line (2, usage on stderr), ``--help`` or ``--version`` (0).
    UsageError
        A count below 1 (``--steps``, ``--budget``, ``--depth``).
    """
    args = build_parser().parse_args(list(argv))
    finish = vars(args).pop("finish", None)
    if finish is not None:  # the script's remainder, read for our options
        finish(args)
    common.check_numbers(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    A crash of graphprobe itself gives ``EXIT_INTERNAL`` (70) and one line that says so (the
    traceback too when ``GRAPHPROBE_DEBUG=1``); Ctrl-C gives 130 and one line.
    """
    tag = "graphprobe:"
    try:
        rank = running.current_rank()
        tag = "graphprobe:" if rank is None else f"graphprobe (rank {rank}):"
        try:
            args = parse_args(sys.argv[1:] if argv is None else argv)
        except SystemExit as e:  # argparse has printed the usage error, the help or the version
            return e.code if isinstance(e.code, int) else 0 if e.code is None else EXIT_USAGE
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return EXIT_USAGE
        code: int = args.run(args, rank, tag)
        return code
    except GraphprobeError as e:
        msg = str(e).removeprefix("graphprobe:").lstrip()
        print(f"{tag} {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{tag} interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug of ours: never 1, which means "findings"
        if _startup.interrupted:  # a half-done import after a Ctrl-C (numpy "loaded twice") is no bug
            print(f"{tag} interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        return _internal_error(e, tag)


def _internal_error(e: BaseException, tag: str) -> int:
    if os.environ.get("GRAPHPROBE_DEBUG") == "1":
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    first = (str(e).splitlines() or [""])[0]
    print(f"{tag} internal error, a bug in graphprobe and not in your script "
          f"({type(e).__name__}: {first}); {BUG_REPORT}.", file=sys.stderr)
    return EXIT_INTERNAL


def main_entry() -> None:
    """``sys.exit(main())``, Ctrl-C included: what a console script made by an older install calls.

    The console script is :func:`graphprobe._entry.main_entry` now, which installs the Ctrl-C
    handler before it imports this package; this one runs the same loop once it is imported.
    """
    _run_entry(lambda: main)
