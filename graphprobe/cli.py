"""The command line: ``graphprobe render``, ``check``, ``show`` and ``diff``; ``main(argv) -> int``.

``show`` re-renders a saved JSON report and ``diff`` compares two (:mod:`graphprobe.cli_saved`);
neither runs a script.

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
import contextlib
import os
import sys
import threading
import traceback
from typing import Iterator, Sequence, TextIO

# Nothing here imports torch at module level: the console entry point catches a Ctrl-C that
# lands while torch is importing (see graphprobe._entry).
from . import __version__
from .errors import (
    BUG_REPORT,
    EXIT_BACKWARD_FAILED,
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    GraphprobeError,
    OutputError,
    UsageError,
)
# The start-up state lives low, in _startup: the console entry (_entry) imports this module,
# so this module imports nothing from it.
from ._startup import imports_done as _imports_done
from ._startup import run_entry as _run_entry
from ._startup import startup as _startup

__all__ = ["main", "main_entry", "FORMATS", "write_report"]

FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".json": "json", ".txt": "txt",
           ".html": "html"}

RENDER_HELP = """\
Run SCRIPT as `python SCRIPT ARGS...` would, record where its autograd graph is cut, and write
the graph of its first training step.

example:
  graphprobe render cor.py -o cor.svg
  graphprobe render train.py --epochs 1 -o graph.json     # script args pass through
  graphprobe render train.py -- -o this_goes_to_the_script --depth 50

graphprobe's own options (-o/--output, --steps, --title, --budget, --depth, --expand,
--keep-running, -q/--quiet, --no-color) are taken wherever they appear, before or after SCRIPT;
every other argument after SCRIPT goes to the script. To give the script an option that has
one of these names, put it after `--`: everything after `--` goes to the script untouched.

The output format follows the extension: .svg .png .dot .json .txt .html; `-o -` prints the text
report. Without -o, SCRIPT's name with .svg is written in the current folder and the text report
is printed. Whenever the report is printed, the script's own output goes to stderr, so stdout
holds the report alone. An output that is SCRIPT itself (by any path) is refused.
"""

CHECK_HELP = """\
Run SCRIPT like `graphprobe render` and print the text report. Exit 1 when a finding has
severity error (a cut between trainable modules, an optimizer-held parameter no loss reaches, a
backward that will fail), else 0: use it to gate CI.

example:
  graphprobe check cor.py && echo "gradient flows"
  graphprobe check cor.py > report.txt     # the report alone; the script's prints go to stderr
  graphprobe check cor.py -o report.json   # also keep the report of the run it gated on

As with render, graphprobe's own options are taken wherever they appear; everything after `--`
goes to the script untouched.

With --baseline OLD.json (a report saved by `graphprobe render SCRIPT -o OLD.json` before a
change), the diff from OLD.json to this run is printed after the report, and check also exits 1
when a loss lost a parameter it used to reach (see `graphprobe diff`).
  graphprobe check train.py --baseline main.json
"""

SHOW_HELP = """\
Re-render a report saved as JSON (`graphprobe render SCRIPT -o report.json`) without running the
script again: the same bytes as `graphprobe render` writes for that run.

example:
  graphprobe render train.py -o run.json     # run once
  graphprobe show run.json -o run.svg        # then any picture, as often as you like
  graphprobe show run.json --depth 1 -o modules.html

The output format follows the extension: .svg .png .dot .json .txt .html; without -o (or with
`-o -`) the text report is printed.
"""

DIFF_HELP = """\
Compare two reports saved as JSON: which loss gained or lost which parameter, which cuts
appeared or went, which losses and parameters were added or removed. Exit 1 when a loss lost a
parameter it used to reach (a parameter removed from the model is listed, not counted), else 0.

example:
  graphprobe render train.py -o before.json    # on main
  graphprobe render train.py -o after.json     # on the branch
  graphprobe diff before.json after.json || echo "this change cut a loss off a parameter"
"""

EXIT_HELP = """\
example: graphprobe render cor.py -o cor.svg

exit codes: 0 fine; 1 check found an error-severity finding, or diff (check --baseline) found
a loss that lost a parameter it used to reach; 2 bad usage (also a saved report that is missing,
not a graphprobe report, or of an unknown schema); 3 the script is missing, broken or raised
before its first backward; 4 it never called backward; 5 the output could not be written; 6 its
backward raised (the report is still written); 70 graphprobe itself crashed (a bug in
graphprobe: GRAPHPROBE_DEBUG=1 shows the traceback); 130 interrupted.
"""

# The one-sentence summaries `graphprobe --help` lists (the descriptions above are too long).
SUMMARIES = {
    "render": "Run a script and write the graph of its first training step, with every cut marked.",
    "check": "Run a script, print the text report, and exit 1 when a finding is an error.",
    "show": "Re-render a saved JSON report to any output format, without running the script again.",
    "diff": "Compare two saved JSON reports and exit 1 when a loss lost a parameter it used to reach.",
}

# Options of ours that take a value, and flags; everything else after SCRIPT goes to the script.
# Every name here must be an option of _parser (tests/test_cli_polish.py checks it).
_VALUED = {"-o", "--output", "--steps", "--title", "--depth", "--expand", "--budget"}  # both commands
_FLAGS = {"--keep-running", "--quiet", "-q", "--no-color"}
#: Options only ``check`` has (under ``render`` such a name goes to the script).
_CHECK_VALUED = {"--baseline"}


def _split(argv: list[str], valued: set[str] = _VALUED) -> tuple[list[str], list[str]]:
    """Separate our options from the script's arguments (ours may come before or after SCRIPT).

    ``valued`` names our options that take a value (``check`` adds ``--baseline``).
    """
    ours: list[str] = []
    script_args: list[str] = []
    seen_script = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            script_args.extend(argv[i + 1:])
            break
        key = a.split("=", 1)[0]
        if key in valued:
            ours.append(a)
            if "=" not in a and i + 1 < len(argv):
                ours.append(argv[i + 1])
                i += 1
        elif key in _FLAGS or (not seen_script and a.startswith("-")):
            ours.append(a)
        elif not seen_script:
            ours.append(a)
            seen_script = True
        else:
            script_args.append(a)
        i += 1
    return ours, script_args


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="graphprobe",
        description="Show where a PyTorch autograd graph is connected, where it is cut, and why.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"graphprobe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{render,check,show,diff}")
    for name, text in (("render", RENDER_HELP), ("check", CHECK_HELP)):
        s = sub.add_parser(name, description=text, help=SUMMARIES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("script", help="the Python script to run")
        if name == "render":
            s.add_argument("-o", "--output", help="output file (.svg .png .dot .json .txt .html) or - for text")
        else:  # a CI gate may keep the report of the run it gated on
            s.add_argument("-o", "--output", help="also write the report to this file "
                                                  "(.svg .png .dot .json .txt .html)")
        _picture_options(s)
        s.add_argument("--steps", type=int, default=1, help="training steps to capture (default 1)")
        s.add_argument("--keep-running", action="store_true",
                       help="after capture, let the script run to its end with every patch removed")
        s.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
        s.add_argument("--no-color", action="store_true", help="no colours in the text report")
        if name == "check":
            s.add_argument("--baseline", metavar="OLD.json",
                           help="a report saved before a change: print the diff to this run and also "
                                "exit 1 when a loss lost a parameter it used to reach")
    _saved_parsers(sub)
    return p


def _picture_options(s: argparse.ArgumentParser) -> None:
    """The options that shape a picture, shared by ``render``, ``check`` and ``show``."""
    s.add_argument("--title", help="title of the picture (default: the verdict)")
    s.add_argument("--budget", type=int, default=200,
                   help="visible nodes the picture aims at: what no finding is about folds by "
                        "module above it (default 200)")
    s.add_argument("--depth", type=int, help="draw modules collapsed to this path depth")
    s.add_argument("--expand", action="append", default=[], metavar="MODULE",
                   help="draw MODULE in full detail in a collapsed picture (repeatable)")


def _saved_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """The subcommands on saved reports, ``show`` and ``diff``: no script, plain argparse."""
    s = sub.add_parser("show", description=SHOW_HELP, help=SUMMARIES["show"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("report", help="a report saved with `graphprobe render SCRIPT -o report.json`")
    s.add_argument("-o", "--output", help="output file (.svg .png .dot .json .txt .html) or - for text")
    _picture_options(s)
    s.add_argument("--no-color", action="store_true", help="no colours in the text report")
    d = sub.add_parser("diff", description=DIFF_HELP, help=SUMMARIES["diff"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("old", help="the baseline report (JSON)")
    d.add_argument("new", help="the report to judge against it (JSON)")


def _show(args: argparse.Namespace) -> int:
    """``graphprobe show``: the saved report, rebuilt and written as ``render`` would write it."""
    from .cli_saved import load_report

    output = args.output
    if output and output != "-":
        if os.path.splitext(output)[1].lower() not in FORMATS:
            raise UsageError(_unknown_extension(output))
        if os.path.isdir(output):
            raise UsageError(f"graphprobe: cannot write {output}: it is a folder. Give a file name "
                             f"such as {os.path.join(output, 'graph.svg')}.")
        if _same_file(output, args.report):
            raise UsageError(f"graphprobe: -o {output} is the report being shown, which graphprobe never "
                             "overwrites. Give another file.")
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder):
            raise OutputError(f"graphprobe: cannot write {output}: the folder {folder} does not exist.")
    report = load_report(args.report)
    if not output or output == "-":
        sys.stdout.write(report.to_text(color=_use_color(args)))
    else:
        write_report(report, output, args.title, depth=args.depth, expand=tuple(args.expand),
                     budget=args.budget)
    return 0


def _rank() -> int | None:
    """This process's rank when a launcher such as torchrun started several (``WORLD_SIZE`` > 1)."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "")))
    except ValueError:
        return None


def _rank_path(path: str, rank: int | None) -> str:
    """``out.json`` -> ``out.rank1.json`` on rank 1 of several; unchanged when not distributed."""
    if rank is None:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.rank{rank}{ext}"


def _use_color(args: argparse.Namespace) -> bool:
    return not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def write_report(report: object, path: str, title: str | None = None, **dot_options: object) -> None:
    """Write ``report`` to ``path`` in the format its extension names, atomically.

    ``dot_options`` (``depth``, ``expand``, ``budget``) shape the picture formats.
    """
    from .render.dot import DotOptions
    from .io import write_atomic
    from .render.image import render_image

    ext = os.path.splitext(path)[1].lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise UsageError(_unknown_extension(path))
    opts = DotOptions(title=title, **dot_options)  # type: ignore[arg-type]
    if fmt in ("svg", "png"):
        data = render_image(report, fmt, opts)  # type: ignore[arg-type]
    elif fmt == "dot":
        from .render.dot import to_dot

        data = to_dot(report, opts).encode("utf-8")  # type: ignore[arg-type]
    elif fmt == "json":
        data = (report.to_json() + "\n").encode("utf-8")  # type: ignore[attr-defined]
    elif fmt == "html":
        from .render.html import render_html

        data = render_html(report, opts).encode("utf-8")  # type: ignore[arg-type]
    else:
        data = report.to_text().encode("utf-8")  # type: ignore[attr-defined]
    write_atomic(path, data)


def _unknown_extension(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return (f"graphprobe: unknown output extension {ext or '(none)'!r} in {path}. "
            f"End the file name with one of {', '.join(sorted(FORMATS))}, or use -o - for the text report.")


def _same_file(a: str, b: str) -> bool:
    """True when paths ``a`` and ``b`` name one file: through symlinks, ``..``, hard links."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): then they are not one file
        return False


def _check_output(output: str | None, path: str, script: str) -> None:
    """Refuse, before the script runs, an output path that cannot be right.

    Raises
    ------
    UsageError
        ``path`` is the script itself (by any name), a folder, or has an unknown extension.
    OutputError
        The folder ``path`` would go in does not exist.
    """
    if _same_file(path, script):
        how = f"-o {output}" if output else f"the default output {path}"
        raise UsageError(f"graphprobe: {how} is the script {script} itself, which graphprobe never "
                         f"overwrites. Give another file, e.g. -o {_suggest(script)}; the script was not run.")
    if os.path.isdir(path):
        raise UsageError(f"graphprobe: cannot write {path}: it is a folder. Give a file name such as "
                         f"{os.path.join(path, 'graph.svg')}; the script was not run.")
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise UsageError(_unknown_extension(path))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"graphprobe: cannot write {path}: the folder {folder} does not exist. "
                          "Create it or choose another -o; the script was not run.")


def _suggest(script: str) -> str:
    return os.path.splitext(os.path.basename(script))[0] + ".graph.svg"


@contextlib.contextmanager
def _stdout_to_stderr(on: bool) -> Iterator[None]:
    """While the script runs, send its ``sys.stdout`` to stderr, so stdout holds our report alone.

    Whatever the script did to ``sys.stdout``, the stream it had before is put back on every way
    out (a return, an exception, a Ctrl-C). Output written to file descriptor 1 directly (a C
    extension, a child process) is not redirected.
    """
    if not on:
        yield
        return
    saved: TextIO = sys.stdout
    with contextlib.suppress(Exception):
        saved.flush()
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        sys.stdout = saved


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    A crash of graphprobe itself gives ``EXIT_INTERNAL`` (70) and one line that says so (the
    traceback too when ``GRAPHPROBE_DEBUG=1``); Ctrl-C gives 130 and one line.
    """
    tag = "graphprobe:"
    try:
        rank = _rank()
        tag = "graphprobe:" if rank is None else f"graphprobe (rank {rank}):"
        return _main(list(sys.argv[1:] if argv is None else argv), rank, tag)
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


def _main(argv: list[str], rank: int | None, tag: str) -> int:
    parser = _parser()
    if argv and argv[0] in ("show", "diff"):
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            return int(e.code or 0)
        if args.command == "diff":
            from .cli_saved import diff

            return diff(args.old, args.new)
        if args.budget < 1 or (args.depth is not None and args.depth < 1):
            print("graphprobe: --budget and --depth must be 1 or more", file=sys.stderr)
            return EXIT_USAGE
        return _show(args)
    if argv and argv[0] in ("render", "check"):
        ours, script_args = _split(argv[1:], _VALUED | _CHECK_VALUED if argv[0] == "check" else _VALUED)
        try:
            args = parser.parse_args([argv[0], *ours])
        except SystemExit as e:
            return int(e.code or 0)
    else:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:
            return int(e.code or 0)
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.steps < 1:
        print("graphprobe: --steps must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    depth = getattr(args, "depth", None)
    if getattr(args, "budget", 1) < 1 or (depth is not None and depth < 1):
        print("graphprobe: --budget and --depth must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    output = getattr(args, "output", None)
    lead = rank is None or rank == 0  # the rank that prints the text report and progress

    # Where to write, fixed before the script runs: the script may change directory.
    # render writes a file unless -o -; check only with -o FILE (and prints the text report too).
    to_file = output != "-" and (args.command == "render" or output is not None)
    path = _rank_path(output or os.path.splitext(os.path.basename(args.script))[0] + ".svg", rank)
    if to_file:
        _check_output(output, path, args.script)
    dest = os.path.abspath(path)
    report_on_stdout = args.command == "check" or not output or output == "-"
    baseline = None
    if getattr(args, "baseline", None):  # read before the script runs: a bad baseline wastes no run
        from .cli_saved import load_report_dict

        baseline = load_report_dict(args.baseline)

    from . import progress as progress_mod
    from .run.options import RunOptions
    from .run.script import run_script

    _imports_done()  # a Ctrl-C that torch's start-up swallowed ends the run here, before the script
    progress_mod.set_enabled(not args.quiet and lead)

    def progress(msg: str) -> None:
        progress_mod.note(msg.removeprefix("graphprobe: "))

    try:
        with _stdout_to_stderr(report_on_stdout):
            res = run_script(RunOptions(args.script, script_args, steps=args.steps,
                                        keep_running=args.keep_running, progress=progress))
        _LEFT_THREADS[:] = res.left_threads
        report = res.report
        color = _use_color(args)
        if to_file:
            write_report(report, dest, args.title, depth=args.depth, expand=tuple(args.expand),
                         budget=args.budget)
            for label, child in res.children:  # one report per child process that trained
                root, ext = os.path.splitext(dest)
                write_report(child, f"{root}.{label}{ext}", args.title, depth=args.depth,
                             expand=tuple(args.expand), budget=args.budget)
            each = " (each rank writes its own: .rank<RANK> before the extension)" if rank is not None else ""
            progress(f"graphprobe: wrote {path}{each}")
        if report_on_stdout and lead:
            sys.stdout.write(report.to_text(color=color))
        code = (EXIT_FINDINGS if not report.ok else 0) if args.command == "check" else 0
        if baseline is not None:
            from .cli_saved import baseline_diff

            text, regressed = baseline_diff(baseline, report)
            if lead:
                sys.stdout.write("\n" + text)
            if regressed and code == 0:
                code = EXIT_FINDINGS
        if res.interrupted:
            print(f"{tag} interrupted; the report covers the backward calls made before it", file=sys.stderr)
            return EXIT_INTERRUPTED
        if res.backward_failed:
            return EXIT_BACKWARD_FAILED
        return code
    finally:
        progress_mod.set_enabled(False)


# Non-daemon threads of the script still alive when the capture stopped it (the loop that would
# have stopped them never ran): the process must not wait for them once the report is written.
_LEFT_THREADS: list[str] = []


def main_entry() -> None:
    """``sys.exit(main())``, Ctrl-C included: what a console script made by an older install calls.

    The console script is :func:`graphprobe._entry.main_entry` now, which installs the Ctrl-C
    handler before it imports this module; this one runs the same loop once it is imported.
    """
    _run_entry(lambda: main)
