"""The console entry point (``graphprobe``, ``python -m graphprobe``), kept tiny on purpose.

It imports nothing but ``sys`` and :mod:`graphprobe._startup` (``signal``) before it is ready
for a Ctrl-C, so that one pressed while graphprobe starts (torch and numpy take a second or two
to import) gives one line and exit code 130, not a traceback; the command line itself is
:func:`graphprobe.cli.main`, which this module imports (never the other way round).
"""
from __future__ import annotations

import sys

from ._startup import imports_done, startup

__all__ = ["main_entry", "imports_done", "startup"]


def main_entry() -> None:
    """Console-script entry point: ``sys.exit(main())``, Ctrl-C included, imports and all."""
    code = 130
    try:
        startup.install()
        from .cli import main

        code = main()
    except KeyboardInterrupt:  # while importing the CLI, or between main's own handlers
        try:
            print("graphprobe: interrupted", file=sys.stderr)
        except Exception:
            pass
        code = 130
    finally:
        startup.restore()
    cli = sys.modules.get("graphprobe.cli")
    if cli is not None and getattr(cli, "_LEFT_THREADS", None):
        import threading

        if any(t.is_alive() and not t.daemon and t is not threading.main_thread()
               for t in threading.enumerate()):
            # The capture stopped the script before it could stop these threads: the report is
            # written, so don't wait for them (a CI gate must get its exit code).
            import os

            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:
                pass
            os._exit(code)
    sys.exit(code)
