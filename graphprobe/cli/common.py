"""What the subcommands share: the picture options, the checks on an output path, and writing a
report through the renderer registry (:mod:`graphprobe.render.registry`)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import OutputError, UsageError
from ..render.registry import Renderer, UnknownExtension, known_extensions, renderer_for

if TYPE_CHECKING:
    from ..model.report import ReportData

__all__ = ["add_picture_options", "picture_options", "check_numbers", "output_renderer",
           "check_output_folder", "same_file", "use_color", "write_report", "extensions_text"]


def extensions_text() -> str:
    """The output extensions the registry knows, for a help text: ``.dot .gv .html ...``."""
    return " ".join(known_extensions())


def add_picture_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options that shape a picture, shared by ``render``, ``check`` and ``show``."""
    return [
        p.add_argument("--title", help="title of the picture (default: the verdict)"),
        p.add_argument("--budget", type=int, default=200,
                       help="visible nodes the picture aims at: what no finding is about folds by "
                            "module above it (default 200)"),
        p.add_argument("--depth", type=int, help="draw modules collapsed to this path depth"),
        p.add_argument("--expand", action="append", default=[], metavar="MODULE",
                       help="draw MODULE in full detail in a collapsed picture (repeatable)"),
    ]


def picture_options(args: argparse.Namespace) -> dict[str, Any]:
    """The picture options of parsed ``args`` as :class:`~graphprobe.render.dot.DotOptions` fields."""
    return {"title": args.title, "depth": args.depth, "expand": tuple(args.expand), "budget": args.budget}


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse a count below 1 (``--steps``, ``--budget``, ``--depth``) before anything runs.

    Raises
    ------
    UsageError
        One of them is 0 or negative.
    """
    if getattr(args, "steps", 1) < 1:
        raise UsageError("graphprobe: --steps must be 1 or more")
    depth = getattr(args, "depth", None)
    if getattr(args, "budget", 1) < 1 or (depth is not None and depth < 1):
        raise UsageError("graphprobe: --budget and --depth must be 1 or more")


def output_renderer(path: str) -> Renderer:
    """The renderer for the output ``path``; a usage error that says what to write otherwise.

    Raises
    ------
    UsageError
        No renderer has the extension of ``path`` (the message lists those that do, and ``-o -``).
    """
    try:
        return renderer_for(path)
    except UnknownExtension as e:
        raise UsageError(f"{str(e).removesuffix('.')}, or use -o - for the text report.") from None


def check_output_folder(path: str, after: str = "") -> None:
    """Refuse an output that is a folder (usage, exit 2) or lies in a folder that does not exist
    (exit 5); ``after`` ends each message (``"; the script was not run"``).

    Raises
    ------
    UsageError
        ``path`` is a folder.
    OutputError
        The folder ``path`` would go in does not exist.
    """
    if os.path.isdir(path):
        raise UsageError(f"graphprobe: cannot write {path}: it is a folder. Give a file name such as "
                         f"{os.path.join(path, 'graph.svg')}{after}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        how = f". Create it or choose another -o{after}." if after else "."
        raise OutputError(f"graphprobe: cannot write {path}: the folder {folder} does not exist{how}")


def same_file(a: str, b: str) -> bool:
    """True when paths ``a`` and ``b`` name one file: through symlinks, ``..``, hard links."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): then they are not one file
        return False


def use_color(args: argparse.Namespace) -> bool:
    """Colours in the text report: only on a terminal, without ``--no-color`` or ``NO_COLOR``."""
    return not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def write_report(report: ReportData, path: str, title: str | None = None, **dot_options: Any) -> None:
    """Write ``report`` to ``path`` in the format its extension names, atomically.

    ``dot_options`` (``depth``, ``expand``, ``budget``) shape the picture formats; the renderer
    comes from :func:`graphprobe.render.registry.renderer_for`.

    Raises
    ------
    UsageError
        No renderer has the extension of ``path``.
    OutputError
        The file could not be written.
    """
    from ..render.dot import DotOptions
    from ..io import write_atomic

    renderer = output_renderer(path)
    write_atomic(path, renderer.render(report, DotOptions(title=title, **dot_options)))
