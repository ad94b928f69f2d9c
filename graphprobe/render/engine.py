"""The layout engine: find ``dot`` or ``graphviz-pure`` and run it bounded in time and memory.

Graphviz's own ``dot`` is used when it is installed; otherwise the ``graphviz-pure`` command (a
pure-Rust port of Graphviz, installed with graphprobe) does the same job with no system package.
``GRAPHPROBE_DOT`` names an explicit engine and wins over both.

Either runs as a child process under a time limit and an address-space limit
(``RLIMIT_AS``, set on the child before it reads a byte of the graph): a layout that would use
24 GB fails fast with :class:`LayoutOutOfMemory` instead of being killed with the machine, and the
caller draws a coarser view (:mod:`graphprobe.render.image`). ``GRAPHPROBE_LAYOUT_MEMORY`` (MB)
and ``GRAPHPROBE_LAYOUT_TIMEOUT`` (seconds) change the limits.

The child is started here rather than by the ``graphviz`` package's ``pipe``: that takes neither a
timeout nor a limit and never shows the child it starts, so it cannot be bounded (running it
inside a bounded Python child costs 120 ms more a picture). The ``graphviz`` package is used above
this module instead: :mod:`graphprobe.render.gv` (``Report.to_graphviz``).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from ..errors import LayoutEngineMissing, OutputError, LayoutTimeout

__all__ = ["ENGINE_ENV", "MEMORY_ENV", "TIMEOUT_ENV", "RASTER_FORMATS", "LayoutOutOfMemory",
           "find_engine", "layout", "memory_limit"]

#: Environment variable naming an explicit layout engine (a path, or a command on ``PATH``).
ENGINE_ENV = "GRAPHPROBE_DOT"
#: Formats drawn in pixels: :func:`layout` gives them a ``dpi`` so their text stays sharp.
RASTER_FORMATS = frozenset({"png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"})

#: Environment variables for the engine's address-space limit (MB) and time limit (seconds).
MEMORY_ENV = "GRAPHPROBE_LAYOUT_MEMORY"
TIMEOUT_ENV = "GRAPHPROBE_LAYOUT_TIMEOUT"
#: The engine's address-space limit when none is set: a quarter of the machine, 1-4 GB.
_DEFAULT_MEMORY_MB = (1024, 4096)

_PURE = "graphviz-pure"
_FORMAT_RE = re.compile(r"^[A-Za-z0-9_]+(:[A-Za-z0-9_]+)*$")
_ALGORITHM_RE = re.compile(r"^[a-z]+$")


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


class LayoutOutOfMemory(OutputError):
    """The layout engine ran out of its address-space limit (or died of a signal)."""


def memory_limit() -> int | None:
    """Bytes of address space the engine may use: ``$GRAPHPROBE_LAYOUT_MEMORY`` MB, else a
    quarter of physical memory clamped to 1-4 GB; None where limits are not supported
    (``0`` in the variable turns the limit off)."""
    try:
        import resource  # noqa: F401  (POSIX only)
    except ImportError:
        return None
    raw = os.environ.get(MEMORY_ENV, "").strip()
    if raw:
        try:
            mb = float(raw)
        except ValueError:
            raise OutputError(f"{MEMORY_ENV}={raw!r} is not a number of megabytes") from None
        return int(mb * 2**20) if mb > 0 else None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    lo, hi = _DEFAULT_MEMORY_MB
    return int(min(max(total // 4, lo * 2**20), hi * 2**20))


def _soft_limit(limit: int, hard: int) -> int:
    """``limit``, never above the hard limit ``hard``."""
    import resource

    return limit if hard == resource.RLIM_INFINITY else min(limit, hard)


def _limit_child(limit: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that sets the child's ``RLIMIT_AS`` (never above the hard limit)."""
    if limit is None:
        return None
    import resource

    def set_limit() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (_soft_limit(limit, hard), hard))

    return set_limit


def _limit_started(pid: int, limit: int) -> bool:
    """Set the ``RLIMIT_AS`` of the started child ``pid`` (Linux ``prlimit``); False if refused.

    The child is the engine, waiting for its input: nothing it lays out runs before the limit.
    A child that has already exited needs no limit (True).
    """
    import resource

    try:
        _, hard = resource.prlimit(pid, resource.RLIMIT_AS)
        resource.prlimit(pid, resource.RLIMIT_AS, (_soft_limit(limit, hard), hard))
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return True


def _late_limits() -> bool:
    """Whether a started child's limit can be set from here (``resource.prlimit``: Linux)."""
    try:
        import resource
    except ImportError:
        return False
    return hasattr(resource, "prlimit")


def _run_bounded(cmd: list[str], data: bytes, timeout: float, limit: int | None,
                 late: bool) -> subprocess.CompletedProcess[bytes] | None:
    """Run ``cmd`` on ``data`` within ``timeout`` seconds and ``limit`` bytes of address space.

    With ``late``, the child starts with no ``preexec_fn`` and gets its limit from here before
    it is sent its input: Python can then start it with ``vfork`` instead of copying the page
    tables of a parent that holds torch and a model (10 ms for a small picture instead of 25 ms,
    ``benchmarks/graphviz_package.py``), and no Python code runs between fork and exec, which
    Python's documentation warns against in a process with threads (a training script has
    them). Without it, the child sets its own limit between fork and exec. Returns None when
    ``late`` was refused by the kernel (nothing was laid out: run it again without).

    Raises
    ------
    subprocess.TimeoutExpired
        When it runs past ``timeout`` (the child is killed and reaped first).
    OSError
        When it cannot be started.
    """
    preexec = None if late else _limit_child(limit)
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, preexec_fn=preexec) as proc:
        try:
            if late and limit is not None and not _limit_started(proc.pid, limit):
                proc.kill()
                proc.wait()
                return None
            out, err = proc.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        except BaseException:
            proc.kill()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def default_timeout(timeout: float) -> float:
    """``$GRAPHPROBE_LAYOUT_TIMEOUT`` seconds if set, else ``timeout``."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return timeout
    try:
        return max(0.1, float(raw))
    except ValueError:
        raise OutputError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


def layout(dot_source: str, fmt: str, timeout: float = 60.0, dpi: float | None = None,
           memory: int | None | str = "default", algorithm: str | None = None,
           no_op: int | None = None) -> bytes:
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
    memory : int or None
        The engine's address-space limit in bytes; :func:`memory_limit` by default, None for
        no limit.
    algorithm : str, optional
        Graphviz's layout algorithm (``-K``: ``dot``, ``neato``, ``fdp`` ...); ``dot`` when not
        given. Both engines have all of them.
    no_op : int, optional
        Graphviz's ``-n``: the nodes' positions are in the source (``1``: nodes only, ``2``:
        edges too), for ``neato``.

    Returns
    -------
    bytes
        The engine's standard output.

    Raises
    ------
    LayoutEngineMissing
        When no engine is found.
    LayoutTimeout
        When the engine runs past ``timeout`` (it is killed).
    LayoutOutOfMemory
        When it runs out of its memory limit, or is killed by a signal.
    OutputError
        When the engine cannot be started, or fails.

    Notes
    -----
    Complexity: that of the engine (``dot`` is super-linear; a 100k-node graph takes minutes).
    """
    if not _FORMAT_RE.match(fmt):
        raise OutputError(f"{fmt!r} is not a layout format; use e.g. svg or png.")
    if algorithm is not None and not _ALGORITHM_RE.match(algorithm):
        raise OutputError(f"{algorithm!r} is not a layout algorithm; use e.g. dot or neato.")
    # The last -K wins in both engines, over graphviz-pure's -Kdot from find_engine.
    cmd = find_engine() + ([f"-K{algorithm}"] if algorithm else []) + [f"-T{fmt}"]
    if no_op:
        cmd.append(f"-n{int(no_op):d}")
    if fmt.split(":")[0].lower() in RASTER_FORMATS:
        cmd.append(f"-Gdpi={dpi if dpi is not None else 144:g}")
    elif dpi is not None:
        cmd.append(f"-Gdpi={dpi:g}")
    limit = memory_limit() if memory == "default" else memory
    assert limit is None or isinstance(limit, int)
    data = dot_source.encode("utf-8")
    try:
        late = limit is not None and _late_limits()
        done = _run_bounded(cmd, data, timeout, limit, late)
        if done is None:  # a sandbox refused prlimit: a child that sets its own limit instead
            done = _run_bounded(cmd, data, timeout, limit, late=False)
        assert done is not None
    except subprocess.TimeoutExpired:
        raise LayoutTimeout(
            f"the layout took too long ({timeout:g} s with {cmd[0]}): the graph is too big to draw "
            "whole. Draw a coarser view (fewer nodes), or use the text or JSON report instead."
        ) from None
    except OSError as e:
        raise OutputError(f"could not run the layout engine {cmd[0]}: {e.strerror or e}") from e
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip() or "(no message)"
        memory_words = ("memory allocation", "out of memory", "cannot allocate", "bad_alloc", "memoryerror")
        if done.returncode < 0 or any(w in err.lower() for w in memory_words):
            cap = f"{limit / 2**30:.1f} GB" if limit else "the machine's memory"
            raise LayoutOutOfMemory(
                f"the layout engine {cmd[0]} ran out of memory (limit {cap}; exit "
                f"{done.returncode}): the graph is too big to draw whole. Draw a coarser view, "
                f"or raise {MEMORY_ENV} (MB).")
        raise OutputError(f"the layout engine {cmd[0]} failed (exit {done.returncode}):\n{err}")
    return done.stdout
