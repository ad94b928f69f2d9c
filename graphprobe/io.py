"""Files written whole: every file graphprobe writes appears at once, or not at all."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import OutputError

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: a temporary file beside it, then :func:`os.replace`.

    Readers see the old file or the new one, never part of one; on failure nothing is left behind.

    Parameters
    ----------
    path : str or path-like
        The file to write (its directory must exist).
    data : bytes
        The whole contents.

    Raises
    ------
    OutputError
        When the file cannot be written, saying which path and why.
    """
    target = Path(os.fspath(path))
    folder = target.parent
    tmp: str | None = None
    try:
        try:
            mode: int | None = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = None
        # O_EXCL with 0o666: the kernel applies the umask, so a new file gets the mode a plain
        # open() would give it, without reading the umask (which would race other threads).
        for attempt in range(100):
            tmp = str(folder / f".{target.name}.{os.getpid()}.{attempt}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                tmp = None
                continue
        else:
            raise OSError(17, "could not create a temporary file beside it")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # an existing file keeps its permissions
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        why = e.strerror or str(e)
        if isinstance(e, FileNotFoundError) and not folder.is_dir():
            why = f"its directory {str(folder)!r} does not exist"
        raise OutputError(f"graphprobe: could not write {str(target)!r}: {why}. Nothing was written; "
                          "choose another output path (-o) or fix its folder.") from e
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
