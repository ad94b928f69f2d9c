"""``file:line`` locations: split them, and shorten them to the file's name for people."""
from __future__ import annotations

__all__ = ["split_location", "short_location"]


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
