"""The command line: ``graphprobe render`` and ``graphprobe check``; ``main(argv) -> int``.

Exit codes (see :mod:`graphprobe.errors`): 0 fine; 1 ``check`` found an error-severity finding;
2 bad usage; 3 the script is missing, broken, or raised (or exited with a non-zero status) before
its first backward; 4 the script never called backward; 5 the output could not be written; 6 the
script's backward raised (the report is still written); 130 interrupted (after the first
backward, the report of what was captured is still written). A script that raises after its
first backward has had its step captured: the report is written and carries the error as a
``script_error`` finding (a DDP unused-parameter error that the report's unreached parameters
explain becomes a note), and ``render`` exits 0 (``check`` exits 1, since the finding is an error).

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank runs the script and writes its own file,
``.rank{RANK}`` put before the extension (``-o out.json`` gives ``out.rank0.json``,
``out.rank1.json`` ...); only rank 0 prints the text report and progress, and any rank prints
what goes wrong with it, tagged with its rank.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Sequence

from . import __version__
from .errors import EXIT_BACKWARD_FAILED, EXIT_FINDINGS, EXIT_USAGE, GraphprobeError, OutputError

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
is printed.
"""

CHECK_HELP = """\
Run SCRIPT like `graphprobe render` and print the text report. Exit 1 when a finding has
severity error (a cut between trainable modules, an optimizer-held parameter no loss reaches, a
backward that will fail), else 0: use it to gate CI.

example:
  graphprobe check cor.py && echo "gradient flows"

As with render, graphprobe's own options are taken wherever they appear; everything after `--`
goes to the script untouched.
"""

# Options of ours that take a value, and flags; everything else after SCRIPT goes to the script.
_VALUED = {"-o", "--output", "--steps", "--title", "--depth", "--expand", "--budget"}
_FLAGS = {"--keep-running", "--quiet", "-q", "--no-color", "--color"}


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate our options from the script's arguments (ours may come before or after SCRIPT)."""
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
        if key in _VALUED:
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
        epilog="example: graphprobe render cor.py -o cor.svg",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"graphprobe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{render,check}")
    for name, text in (("render", RENDER_HELP), ("check", CHECK_HELP)):
        s = sub.add_parser(name, description=text, help=text.splitlines()[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("script", help="the Python script to run")
        if name == "render":
            s.add_argument("-o", "--output", help="output file (.svg .png .dot .json .txt .html) or - for text")
            s.add_argument("--title", help="title of the picture (default: the verdict)")
            s.add_argument("--budget", type=int, default=1500,
                           help="above this many nodes, draw one node per module (default 1500)")
            s.add_argument("--depth", type=int, help="draw modules collapsed to this path depth")
            s.add_argument("--expand", action="append", default=[], metavar="MODULE",
                           help="draw MODULE in full detail in a collapsed picture (repeatable)")
        s.add_argument("--steps", type=int, default=1, help="training steps to capture (default 1)")
        s.add_argument("--keep-running", action="store_true",
                       help="after capture, let the script run to its end with every patch removed")
        s.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
        s.add_argument("--no-color", action="store_true", help="no colours in the text report")
    return p


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
    from .render.engine import write_atomic
    from .render.image import render_image

    ext = os.path.splitext(path)[1].lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise OutputError(
            f"graphprobe: unknown output extension {ext or '(none)'!r} in {path}. "
            f"Use one of {', '.join(sorted(FORMATS))}, or -o - for the text report."
        )
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if argv and argv[0] in ("render", "check"):
        ours, script_args = _split(argv[1:])
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
    rank = _rank()
    lead = rank is None or rank == 0  # the rank that prints the text report and progress
    tag = "graphprobe:" if rank is None else f"graphprobe (rank {rank}):"
    if output and output != "-" and os.path.splitext(output)[1].lower() not in FORMATS:
        print(f"{tag} unknown output extension in {output}. "
              f"Use one of {', '.join(sorted(FORMATS))}, or -o - for the text report.", file=sys.stderr)
        return OutputError.exit_code

    if output and output != "-":
        output = _rank_path(output, rank)
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder):
            print(f"{tag} cannot write {output}: the folder {folder} does not exist. "
                  "Create it or choose another -o; the script was not run.", file=sys.stderr)
            return OutputError.exit_code
        if os.path.isdir(output):
            print(f"{tag} cannot write {output}: it is a folder. Give a file name such as "
                  f"{os.path.join(output, 'graph.svg')}; the script was not run.", file=sys.stderr)
            return OutputError.exit_code

    from . import progress as progress_mod
    from .runner import RunOptions, run_script

    progress_mod.set_enabled(not args.quiet and lead)

    def progress(msg: str) -> None:
        progress_mod.note(msg.removeprefix("graphprobe: "))

    # Where to write, fixed before the script runs: the script may change directory.
    path = output or _rank_path(os.path.splitext(os.path.basename(args.script))[0] + ".svg", rank)
    dest = os.path.abspath(path)
    try:
        res = run_script(RunOptions(args.script, script_args, steps=args.steps,
                                    keep_running=args.keep_running, progress=progress))
        _LEFT_THREADS[:] = res.left_threads
        report = res.report
        color = _use_color(args)
        if args.command == "check":
            if lead:
                sys.stdout.write(report.to_text(color=color))
            code = EXIT_FINDINGS if not report.ok else 0
        else:
            if output == "-":
                if lead:
                    sys.stdout.write(report.to_text(color=color))
            else:
                write_report(report, dest, args.title, depth=args.depth, expand=tuple(args.expand),
                             budget=args.budget)
                for label, child in res.children:  # one report per child process that trained
                    root, ext = os.path.splitext(dest)
                    write_report(child, f"{root}.{label}{ext}", args.title, depth=args.depth,
                                 expand=tuple(args.expand), budget=args.budget)
                if not output and lead:
                    sys.stdout.write(report.to_text(color=color))
                each = " (each rank writes its own: .rank<RANK> before the extension)" if rank is not None else ""
                progress(f"graphprobe: wrote {path}{each}")
            code = 0
        if res.interrupted:
            print(f"{tag} interrupted; the report covers the backward calls made before it", file=sys.stderr)
            return 130
        if res.backward_failed:
            return EXIT_BACKWARD_FAILED
        return code
    except GraphprobeError as e:
        msg = str(e).removeprefix("graphprobe:").lstrip()
        print(f"{tag} {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{tag} interrupted", file=sys.stderr)
        return 130
    finally:
        progress_mod.set_enabled(False)


# Non-daemon threads of the script still alive when the capture stopped it (the loop that would
# have stopped them never ran): the process must not wait for them once the report is written.
_LEFT_THREADS: list[str] = []


def main_entry() -> None:
    """Console-script entry point."""
    code = main()
    if _LEFT_THREADS and any(t.is_alive() and not t.daemon and t is not threading.main_thread()
                             for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
