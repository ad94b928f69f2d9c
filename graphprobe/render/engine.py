"""The layout engine: find ``dot`` or ``graphviz-pure``, run it on DOT text, write files atomically.

Graphviz's own ``dot`` is used when it is installed; otherwise the ``graphviz-pure`` command (a
pure-Rust port of Graphviz, installed with graphprobe) does the same job with no system package.
``GRAPHPROBE_DOT`` names an explicit engine and wins over both.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import LayoutEngineMissing, OutputError, LayoutTimeout

__all__ = ["ENGINE_ENV", "RASTER_FORMATS", "find_engine", "layout", "write_atomic"]

#: Environment variable naming an explicit layout engine (a path, or a command on ``PATH``).
ENGINE_ENV = "GRAPHPROBE_DOT"
#: Formats drawn in pixels: :func:`layout` gives them a ``dpi`` so their text stays sharp.
RASTER_FORMATS = frozenset({"png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"})

_PURE = "graphviz-pure"
_FORMAT_RE = re.compile(r"^[A-Za-z0-9_]+(:[A-Za-z0-9_]+)*$")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_engine() -> list[str]:
    """The command line that lays out DOT: ``[program, options...]``, without ``-T``.

    Looks, in order, at ``$GRAPHPROBE_DOT``, then Graphviz's ``dot`` on ``PATH``, then the
    ``graphviz-pure`` command on ``PATH`` and next to ``sys.executable`` (a virtual environment's
    ``bin`` need not be on ``PATH``).

    Returns
    -------
    list of str
        Arguments for :func:`subprocess.run`.

    Raises
    ------
    LayoutEngineMissing
        When ``$GRAPHPROBE_DOT`` names no executable, or when neither engine can be found.

    Examples
    --------
    >>> import os
    >>> os.path.basename(find_engine()[0]) in ("dot", "graphviz-pure")
    True
    """
    explicit = os.environ.get(ENGINE_ENV, "").strip()
    if explicit:
        found = shutil.which(explicit)
        if found is None and _executable(Path(explicit)):
            found = explicit
        if found is None:
            raise LayoutEngineMissing(
                f"{ENGINE_ENV}={explicit!r} is not an executable layout engine. Point it at "
                f"Graphviz's `dot` or at `{_PURE}`, or unset it to let graphprobe search."
            )
        return [found]
    dot = shutil.which("dot")
    if dot is not None:
        return [dot]
    pure = shutil.which(_PURE)
    if pure is None:
        here = Path(sys.executable).parent
        for name in (_PURE, _PURE + ".exe"):
            if _executable(here / name):
                pure = str(here / name)
                break
    if pure is not None:
        # The command name picks the layout in Graphviz; say ``dot`` outright.
        return [pure, "-Kdot"]
    raise LayoutEngineMissing(
        "no layout engine found for SVG/PNG output: install Graphviz (the `dot` command, e.g. "
        f"`apt install graphviz` or `brew install graphviz`), or `pip install {_PURE}`. "
        f"Or set {ENGINE_ENV} to an engine's path. Text and JSON output need neither."
    )


def layout(dot_source: str, fmt: str, timeout: float = 60.0, dpi: float | None = None) -> bytes:
    """Lay out ``dot_source`` with :func:`find_engine` and return the drawing in format ``fmt``.

    Parameters
    ----------
    dot_source : str
        A DOT graph (e.g. from :func:`graphprobe.render.dot.to_dot`).
    fmt : str
        A Graphviz output format: ``svg``, ``png``, ``pdf``, ``json`` ...
    timeout : float
        Seconds to wait for the engine.
    dpi : float, optional
        Resolution for raster formats (:data:`RASTER_FORMATS`); 144 when not given. Vector
        formats are left at Graphviz's default scale.

    Returns
    -------
    bytes
        The engine's standard output.

    Raises
    ------
    LayoutEngineMissing
        When no engine is found.
    OutputError
        When the engine runs past ``timeout``, cannot be started, or fails.

    Notes
    -----
    Complexity: that of the engine (``dot`` is super-linear; a 100k-node graph takes minutes).
    """
    if not _FORMAT_RE.match(fmt):
        raise OutputError(f"{fmt!r} is not a layout format; use e.g. svg or png.")
    cmd = find_engine() + [f"-T{fmt}"]
    if fmt.split(":")[0].lower() in RASTER_FORMATS:
        cmd.append(f"-Gdpi={dpi if dpi is not None else 144:g}")
    elif dpi is not None:
        cmd.append(f"-Gdpi={dpi:g}")
    try:
        done = subprocess.run(cmd, input=dot_source.encode("utf-8"), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LayoutTimeout(
            f"the layout took too long ({timeout:g} s with {cmd[0]}): the graph is too big to draw "
            "whole. Draw a coarser view (fewer nodes), or use the text or JSON report instead."
        ) from None
    except OSError as e:
        raise OutputError(f"could not run the layout engine {cmd[0]}: {e.strerror or e}") from e
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip() or "(no message)"
        raise OutputError(f"the layout engine {cmd[0]} failed (exit {done.returncode}):\n{err}")
    return done.stdout


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
