"""Ctrl-C while graphprobe starts: the state and the run loop the entry point and the CLI share.

It imports nothing but ``signal`` and ``sys`` (``os`` and ``threading`` at the very end), so
both :mod:`graphprobe._entry` (the console script, which imports the CLI) and
:mod:`graphprobe.cli` (which reads the state) can import it without importing each other.
"""
from __future__ import annotations

import signal
import sys
from typing import Callable

__all__ = ["startup", "imports_done", "run_entry"]


class startup:  # noqa: N801  (a namespace of class attributes, used as a module-level singleton)
    """Ctrl-C while graphprobe starts, seen by a SIGINT handler of ours.

    Python's own handler raises KeyboardInterrupt wherever the signal lands, and some of those
    places swallow it: torch's C++ start-up imports numpy and carries on without it when that
    import fails, so one Ctrl-C could be lost (the script then ran on) or come back later as
    numpy's "cannot load module more than once". Ours notes the signal as well; Python's is put
    back before the user's script runs, so the script sees what it always sees.
    """

    interrupted = False
    previous: object = None

    @classmethod
    def handler(cls, signum: int, frame: object) -> None:
        cls.interrupted = True
        raise KeyboardInterrupt

    @classmethod
    def install(cls) -> None:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            cls.previous = signal.signal(signal.SIGINT, cls.handler)

    @classmethod
    def restore(cls) -> None:
        # == not is: each access to a classmethod makes a new bound method, equal to the last
        if cls.previous is not None and signal.getsignal(signal.SIGINT) == cls.handler:
            signal.signal(signal.SIGINT, cls.previous)  # type: ignore[arg-type]
        cls.previous = None


def imports_done() -> None:
    """Called once graphprobe has imported what it needs, just before the script runs.

    Puts Python's SIGINT handler back, and raises KeyboardInterrupt for a Ctrl-C that came
    during the imports and was swallowed on the way.
    """
    startup.restore()
    if startup.interrupted:
        raise KeyboardInterrupt


def run_entry(load_main: Callable[[], Callable[[], int]]) -> None:
    """``sys.exit(main())`` for a console entry point, Ctrl-C included, imports and all.

    ``load_main`` imports the command line and returns its ``main``; it runs under our SIGINT
    handler, so a Ctrl-C while it imports gives one line and exit 130. The entry point
    (:func:`graphprobe._entry.main_entry`) and :func:`graphprobe.cli.main_entry` (the path an
    older install's console script calls) both end here.
    """
    code = 130
    try:
        startup.install()
        code = load_main()()
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
