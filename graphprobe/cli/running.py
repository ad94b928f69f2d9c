"""What ``render`` and ``check`` share: SCRIPT and its arguments, running it, writing its report.

**How the command line is split.** argparse reads it all, in two passes over one set of option
definitions. The subcommand's parser takes graphprobe's options up to SCRIPT, then SCRIPT and
everything after it as a remainder (``nargs=argparse.REMAINDER``, as ``memray run`` does). The
remainder up to a ``--`` is then read by a second parser built from the same definitions,
``parse_known_args``: graphprobe's options found there are ours (the README's
``graphprobe render train.py 50 -o out.json``, where ``50`` is the script's), and whatever it does
not know goes to the script, in order. Only exact names count after SCRIPT: the script's
``-optim adam``, ``-qv`` or ``--out`` are never read as ``-o ptim``, ``-q -v`` or ``--output``.
Everything after ``--`` goes to the script untouched (``train.py -- -o x``), and so does
everything after SCRIPT when a ``--`` comes before it (``render -o g.json -- train.py -o x``).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

from ..errors import EXIT_BACKWARD_FAILED, EXIT_INTERRUPTED, UsageError
from . import common

if TYPE_CHECKING:
    from ..report import Report

__all__ = ["add_script_parser", "take_script", "Destination", "prepare", "execute", "rank_path",
           "current_rank", "add_run_options", "option_names", "LEFT_THREADS"]

#: Options a subcommand adds to a parser; called on both of its parsers (see the module docstring).
AddOptions = Callable[[argparse.ArgumentParser], list[argparse.Action]]

# Non-daemon threads of the script still alive when the capture stopped it (the loop that would
# have stopped them never ran): the process must not wait for them once the report is written.
# graphprobe._startup reads it as graphprobe.cli._LEFT_THREADS; filled in place, never rebound.
LEFT_THREADS: list[str] = []


class _ExactNames(argparse.ArgumentParser):
    """A parser that knows an option only by its exact name (or ``name=value``).

    argparse reads ``-optim`` as ``-o ptim`` and ``--out`` as ``--output`` (prefix matching,
    which ``allow_abbrev=False`` turns off only for long options); after SCRIPT such words are
    the script's, so this parser finds no option by a prefix.
    """

    def _get_option_tuples(self, option_string: str) -> list[Any]:
        return []


def add_run_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of every script run: how much to capture, and what graphprobe prints."""
    return [
        p.add_argument("--steps", type=int, default=1, help="training steps to capture (default 1)"),
        p.add_argument("--keep-running", action="store_true",
                       help="after capture, let the script run to its end with every patch removed"),
        p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr"),
        p.add_argument("--no-color", action="store_true", help="no colours in the text report"),
    ]


def option_names(actions: list[argparse.Action]) -> str:
    """``  -o/--output, --title, ...``: the options ``actions`` define, for a help text, indented."""
    return textwrap.fill(", ".join("/".join(a.option_strings) for a in actions), width=94,
                         initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)


def add_script_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str,
                      description: str, add_options: AddOptions) -> argparse.ArgumentParser:
    """The parser of a subcommand that runs a script, ``render`` or ``check``.

    ``description`` may hold ``{ours}``, replaced by the names of the options ``add_options``
    defines (so a help text never names an option that argparse lacks), and ``{exts}``, by the
    output extensions the renderer registry knows.
    """
    s = sub.add_parser(name, help=summary, formatter_class=argparse.RawDescriptionHelpFormatter,
                       usage="%(prog)s [options] SCRIPT [ARGS ...]")
    ours = add_options(s)
    s.add_argument("target", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS ...]",
                   help="the Python script to run, and its arguments")
    s.description = description.format(ours=option_names(ours), exts=common.extensions_text())
    tail = _ExactNames(prog=s.prog, usage=s.usage, add_help=False, allow_abbrev=False)
    add_options(tail)
    s.set_defaults(finish=functools.partial(take_script, parser=s, tail=tail))
    return s


def take_script(args: argparse.Namespace, parser: argparse.ArgumentParser,
                tail: argparse.ArgumentParser) -> None:
    """Set ``args.script`` and ``args.script_args`` from the remainder, reading our options in it.

    See the module docstring for the rule. Exits 2 (argparse's ``error``) when SCRIPT is missing
    or one of our options after it is malformed.

    Complexity: O(number of arguments).
    """
    target: list[str] = list(args.target)
    del args.target
    untouched = target[:1] == ["--"]  # `render [options] -- SCRIPT ARGS...`
    if untouched:
        target = target[1:]
    if not target:
        parser.error("the following arguments are required: SCRIPT")
    args.script, rest = target[0], target[1:]
    if untouched:
        args.script_args = rest
        return
    cut = rest.index("--") if "--" in rest else len(rest)
    _, theirs = tail.parse_known_args(rest[:cut], namespace=args)
    args.script_args = theirs + rest[cut + 1:]


def current_rank() -> int | None:
    """This process's rank when a launcher such as torchrun started several (``WORLD_SIZE`` > 1)."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "")))
    except ValueError:
        return None


def rank_path(path: str, rank: int | None) -> str:
    """``out.json`` -> ``out.rank1.json`` on rank 1 of several; unchanged when not distributed."""
    if rank is None:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.rank{rank}{ext}"


def _suggest(script: str) -> str:
    return os.path.splitext(os.path.basename(script))[0] + ".graph.svg"


def _check_output(output: str | None, path: str, script: str) -> None:
    """Refuse, before the script runs, an output path that cannot be right.

    Raises
    ------
    UsageError
        ``path`` is the script itself (by any name), a folder, or has an unknown extension.
    OutputError
        The folder ``path`` would go in does not exist.
    """
    if common.same_file(path, script):
        how = f"-o {output}" if output else f"the default output {path}"
        raise UsageError(f"graphprobe: {how} is the script {script} itself, which graphprobe never "
                         f"overwrites. Give another file, e.g. -o {_suggest(script)}; the script was not run.")
    if os.path.isdir(path):  # a folder is refused before its (missing) extension
        common.check_output_folder(path, "; the script was not run")
    common.output_renderer(path)
    common.check_output_folder(path, "; the script was not run")


@dataclass
class Destination:
    """Where a run's report goes, fixed before the script runs (the script may change directory).

    Attributes
    ----------
    path : str
        The output file as the user named it (``.rank<RANK>`` added under torchrun).
    dest : str
        The same, absolute.
    to_file : bool
        Write the report to ``dest``.
    on_stdout : bool
        Print the text report (the script's stdout then goes to stderr while it runs).
    rank : int or None
        This process's rank under torchrun; None when alone.
    """

    path: str
    dest: str
    to_file: bool
    on_stdout: bool
    rank: int | None

    @property
    def lead(self) -> bool:
        """This rank prints the text report and progress (rank 0, or the only process)."""
        return self.rank is None or self.rank == 0


def prepare(args: argparse.Namespace, to_file: bool, on_stdout: bool, rank: int | None) -> Destination:
    """The destination of a run, checked (see :func:`_check_output`) when it is a file.

    Without ``-o``, the default output is SCRIPT's name with ``.svg``, in the current folder.
    """
    path = rank_path(args.output or os.path.splitext(os.path.basename(args.script))[0] + ".svg", rank)
    if to_file:
        _check_output(args.output, path, args.script)
    return Destination(path, os.path.abspath(path), to_file, on_stdout, rank)


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


def execute(args: argparse.Namespace, where: Destination, tag: str,
            judge: Callable[[Report, bool], int]) -> int:
    """Run the script, write and print its report, and return the exit code.

    ``judge(report, lead)`` gives the subcommand's own code for a finished run (``check``: 1 on
    an error-severity finding) and prints what it adds after the report; an interrupt (130) or a
    failed backward (6) comes before it.
    """
    from .. import progress as progress_mod
    from .._startup import imports_done
    from ..run.options import RunOptions
    from ..run.script import run_script

    imports_done()  # a Ctrl-C that torch's start-up swallowed ends the run here, before the script
    progress_mod.set_enabled(not args.quiet and where.lead)

    def progress(msg: str) -> None:
        progress_mod.note(msg.removeprefix("graphprobe: "))

    try:
        with _stdout_to_stderr(where.on_stdout):
            res = run_script(RunOptions(args.script, args.script_args, steps=args.steps,
                                        keep_running=args.keep_running, progress=progress))
        LEFT_THREADS[:] = res.left_threads
        report = res.report
        if where.to_file:
            picture = common.picture_options(args)
            common.write_report(report, where.dest, **picture)
            for label, child in res.children:  # one report per child process that trained
                root, ext = os.path.splitext(where.dest)
                common.write_report(child, f"{root}.{label}{ext}", **picture)
            each = " (each rank writes its own: .rank<RANK> before the extension)" if where.rank is not None else ""
            progress(f"graphprobe: wrote {where.path}{each}")
        if where.on_stdout and where.lead:
            sys.stdout.write(report.to_text(color=common.use_color(args)))
        code = judge(report, where.lead)
        if res.interrupted:
            print(f"{tag} interrupted; the report covers the backward calls made before it", file=sys.stderr)
            return EXIT_INTERRUPTED
        if res.backward_failed:
            return EXIT_BACKWARD_FAILED
        return code
    finally:
        progress_mod.set_enabled(False)
