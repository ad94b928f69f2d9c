"""``file:line`` locations: split them, shorten them for people (a notebook cell by its number), tell user code from libraries'.

A location is recorded as ``path:line`` with the path the interpreter gave the code (JSON keeps
it: ``linecache`` and ``# graphprobe: ignore`` need it). For people it is shortened to the file's
name, and code from a notebook cell is named by the cell: IPython compiles each cell under a
file name of its own (``/tmp/ipykernel_812/1177934417.py`` under Jupyter,
``<ipython-input-3-…>`` in older IPython) and remembers which execution count it was, so
``1177934417.py:4`` reads ``In [3], line 4``, as IPython's own tracebacks say it.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any

__all__ = ["split_location", "short_location", "cell_number", "register_cell", "is_user_file"]

# Cells registered by hand (register_cell): compiled file name -> execution count.
_CELLS: dict[str, int] = {}
_OLD_IPYTHON = re.compile(r"^<ipython-input-(\d+)-[0-9a-f]+>$")


def register_cell(filename: str, number: int) -> None:
    """Name code compiled under ``filename`` as cell ``In [number]`` (for other notebook front ends).

    IPython's cells need no registration: they are found through IPython's own compiler.
    """
    _CELLS[filename] = int(number)


def cell_number(path: str) -> int | None:
    """The execution count of the notebook cell compiled under ``path``, or None for a file.

    Looked up in :func:`register_cell`'s table, then in IPython's compiler (only when IPython is
    already imported: graphprobe never imports it), then in the ``<ipython-input-N-…>`` name.

    >>> cell_number("<ipython-input-7-0a1b2c3d4e5f>")
    7
    >>> cell_number("/work/cor.py") is None
    True
    """
    if path in _CELLS:
        return _CELLS[path]
    ipython: Any = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    if get is not None:
        try:
            shell = get()
            # IPython's CachingCompiler.cache() records file name -> execution count here.
            number = getattr(getattr(shell, "compile", None), "_filename_map", {}).get(path)
        except Exception:  # a shell that is half torn down, or not IPython's: no cell, no crash
            number = None
        if isinstance(number, int):
            return number
    m = _OLD_IPYTHON.match(path)
    return int(m.group(1)) if m else None


_IS_USER: dict[str, bool] = {}
_PKG_DIRS: tuple[str, ...] | None = None


def _pkg_dirs() -> tuple[str, ...]:
    # torch's, numpy's and graphprobe's own folders; read from sys.modules, so nothing is imported.
    global _PKG_DIRS
    if _PKG_DIRS is None:
        dirs = [os.path.dirname(os.path.abspath(__file__)) + os.sep]  # graphprobe/
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

    A notebook cell's location is named by the cell (see :func:`cell_number`).

    >>> short_location("C:/work/cor.py:17")
    'cor.py:17'
    >>> short_location("<ipython-input-3-5d2a0e1f9c7b>:4")
    'In [3], line 4'
    """
    if not loc:
        return default
    path, line = split_location(loc)
    cell = cell_number(path)
    if cell is not None:
        return f"In [{cell}], line {line}" if line is not None else f"In [{cell}]"
    name = path.replace(chr(92), "/").rsplit("/", 1)[-1]
    return f"{name}:{line}" if line is not None else name
