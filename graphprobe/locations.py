"""``file:line`` locations: split them, shorten them for people, and tell user code from libraries'."""
from __future__ import annotations

import os
import sys

__all__ = ["split_location", "short_location", "is_user_file"]

_IS_USER: dict[str, bool] = {}
_PKG_DIRS: tuple[str, ...] | None = None


def _pkg_dirs() -> tuple[str, ...]:
    # torch's, numpy's and graphprobe's own folders; read from sys.modules, so nothing is imported.
    global _PKG_DIRS
    if _PKG_DIRS is None:
        dirs = [os.path.dirname(os.path.abspath(__file__)) + os.sep]
        for name in ("torch", "numpy"):
            f = getattr(sys.modules.get(name), "__file__", None)
            if f:
                dirs.append(os.path.dirname(os.path.abspath(f)) + os.sep)
        _PKG_DIRS = tuple(dirs)
    return _PKG_DIRS


def is_user_file(fname: str) -> bool:
    """Whether code in ``fname`` is the user's: not torch's, numpy's, graphprobe's or the import machinery's."""
    r = _IS_USER.get(fname)
    if r is None:
        a = os.path.abspath(fname) if not fname.startswith("<") else fname
        r = not (a.startswith(_pkg_dirs()) or fname.startswith("<frozen") or "/contextlib.py" in a
                 or "/runpy.py" in a or "/functools.py" in a)
        _IS_USER[fname] = r
    return r


def split_location(loc: str | None) -> tuple[str, int | None]:
    """``"/a/b/cor.py:17"`` -> ``("/a/b/cor.py", 17)``; a location without a line gives None.

    >>> split_location("/a/b/cor.py:17")
    ('/a/b/cor.py', 17)
    """
    if not loc:
        return "", None
    path, sep, line = loc.rpartition(":")
    if not sep:
        return loc, None
    try:
        return path, int(line)
    except ValueError:
        return loc, None


def short_location(loc: str | None, default: str = "?") -> str:
    """``"/a/b/cor.py:17"`` -> ``"cor.py:17"`` (Windows separators too); ``default`` if empty.

    >>> short_location("C:/work/cor.py:17")
    'cor.py:17'
    """
    if not loc:
        return default
    path, line = split_location(loc)
    name = path.replace(chr(92), "/").rsplit("/", 1)[-1]
    return f"{name}:{line}" if line is not None else name
