"""Ctrl-C while graphprobe starts: the state the console entry point and the CLI share.

It imports nothing but ``signal``, so both :mod:`graphprobe._entry` (the console script, which
imports the CLI) and :mod:`graphprobe.cli` (which reads the state) can import it without
importing each other.
"""
from __future__ import annotations

import signal

__all__ = ["startup", "imports_done"]


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
