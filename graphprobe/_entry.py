"""The console entry point (``graphprobe``, ``python -m graphprobe``), kept tiny on purpose.

It imports nothing but :mod:`graphprobe._startup` (``signal``, ``sys``) before it is ready
for a Ctrl-C, so that one pressed while graphprobe starts (torch and numpy take a second or two
to import) gives one line and exit code 130, not a traceback; the command line itself is
:func:`graphprobe.cli.main`, which this module imports (never the other way round).
"""
from __future__ import annotations

from typing import Callable

from ._startup import imports_done, run_entry, startup

__all__ = ["main_entry", "imports_done", "startup"]


def _load_cli() -> Callable[[], int]:
    from .cli import main  # here, under run_entry's SIGINT handler: the import is what it guards

    return main


def main_entry() -> None:
    """Console-script entry point: ``sys.exit(main())``, Ctrl-C included, imports and all."""
    run_entry(_load_cli)
