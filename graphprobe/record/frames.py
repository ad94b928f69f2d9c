"""The user's frame and ``file:line``: the nearest frame outside torch, numpy and graphprobe."""
from __future__ import annotations

import linecache
import sys
from typing import Any

from ..locations import is_user_file as _is_user_file, split_location

def user_frame(depth: int = 1) -> Any:
    """The nearest frame outside torch, numpy and graphprobe (None if there is none)."""
    f: Any = sys._getframe(depth)
    while f is not None and not _is_user_file(f.f_code.co_filename):
        f = f.f_back
    return f


def user_location(depth: int = 1) -> str | None:
    """``file:line`` of the nearest frame outside torch, numpy and graphprobe. Complexity: O(stack)."""
    f: Any = sys._getframe(depth)
    while f is not None:
        fn = f.f_code.co_filename
        if _is_user_file(fn):
            return f"{fn}:{f.f_lineno}"
        f = f.f_back
    return None


def _ignored(loc: str | None) -> bool:
    path, line = split_location(loc)
    return line is not None and "graphprobe: ignore" in linecache.getline(path, line)
