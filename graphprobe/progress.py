"""Progress lines on stderr for steps that can take over a second; ``--quiet`` turns them off."""
from __future__ import annotations

import sys
import time

__all__ = ["enabled", "note", "set_enabled"]

enabled = False  # the CLI turns this on unless --quiet; the library stays silent by default
_T0 = time.perf_counter()


def set_enabled(on: bool) -> None:
    """Turn progress lines on or off."""
    global enabled
    enabled = on


def note(msg: str) -> None:
    """Print ``graphprobe: msg`` to stderr when progress lines are on."""
    if enabled:
        print(f"graphprobe: {msg} [{time.perf_counter() - _T0:.1f}s]", file=sys.stderr, flush=True)
