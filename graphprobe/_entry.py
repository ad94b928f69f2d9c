"""The console entry point (``graphprobe``, ``python -m graphprobe``), kept tiny on purpose.

It imports nothing but ``signal`` and ``sys`` before it is ready for a Ctrl-C, so that one
pressed while graphprobe starts (torch and numpy take a second or two to import) gives one line
and exit code 130, not a traceback; the command line itself is :func:`graphprobe.cli.main`.
"""
from __future__ import annotations

import signal
import sys

__all__ = ["main_entry", "imports_done", "startup"]


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
