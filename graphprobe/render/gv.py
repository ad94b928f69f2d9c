"""The report as a ``graphviz.Source``: notebook display, ``pipe``, and the graphviz package's own tools.

:meth:`graphprobe.report.Report.to_graphviz` returns a :class:`BoundedSource`: a
``graphviz.Source`` of exactly the report's DOT (:func:`graphprobe.render.dot.to_dot`), so what the
graphviz package does well is there for a report: Jupyter displays it (``_repr_mimebundle_``,
SVG by default, PNG or JPEG on request), and ``render``, ``view``, ``save`` and ``unflatten`` work
as on any graphviz object, with a system Graphviz.

One thing differs from a plain ``Source``: :meth:`BoundedSource.pipe`, and so the notebook display
built on it, lays out through :func:`graphprobe.render.engine.layout` instead of graphviz's own
pipe. That finds an engine as every graphprobe picture does (``$GRAPHPROBE_DOT``, a system ``dot``,
else the ``graphviz-pure`` that comes with graphprobe, so a pip-only notebook displays it too) and
keeps its bounds: a time limit and an address-space limit on the engine, which graphviz's own pipe
cannot set (it takes neither and never shows the child it starts). The bytes are the same as
graphviz's pipe with the same engine.

This module imports ``graphviz``; nothing imports this module at startup (``import graphprobe``
stays cheap): :meth:`~graphprobe.report.Report.to_graphviz` imports it on first use.
"""
from __future__ import annotations

from typing import Any

import graphviz

from .engine import default_timeout, layout
from .image import LAYOUT_TIMEOUT

__all__ = ["BoundedSource", "to_source"]


class BoundedSource(graphviz.Source):  # graphviz ships no type hints: Source is Any to mypy
    """A ``graphviz.Source`` whose :meth:`pipe` lays out with graphprobe's bounded engine.

    ``timeout`` (seconds; ``$GRAPHPROBE_LAYOUT_TIMEOUT`` wins, as for every picture) bounds
    each layout; the memory limit is the engine's (:func:`graphprobe.render.engine.memory_limit`,
    ``$GRAPHPROBE_LAYOUT_MEMORY``).
    """

    def __init__(self, source: str, *, timeout: float = LAYOUT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self.timeout = timeout

    def _copy_kwargs(self, **kwargs: Any) -> Any:
        # graphviz's hook for copy(): each class adds its own fields (so copies keep the bound).
        return super()._copy_kwargs(timeout=self.timeout, **kwargs)

    def pipe(self, format: str | None = None, renderer: str | None = None,  # noqa: A002
             formatter: str | None = None, neato_no_op: bool | int | None = None,
             quiet: bool = False, *, engine: str | None = None,
             encoding: str | None = None) -> bytes | str:
        """The source laid out in ``format`` (``self.format`` by default), as graphviz's ``pipe``.

        Parameters are graphviz's: ``format``, ``renderer`` and ``formatter`` make the ``-T``
        value, ``engine`` the ``-K`` one (``self.engine`` by default), and ``encoding`` decodes
        the output to ``str``, ``neato_no_op`` the ``-n`` flag (positions already in the
        source). The engine's messages are never echoed (``quiet`` is accepted for graphviz's
        signature); on failure they are in the error.

        Raises
        ------
        ValueError
            For an engine, format, renderer or formatter graphviz does not know.
        graphprobe.errors.LayoutEngineMissing, LayoutTimeout, OutputError
            As :func:`graphprobe.render.engine.layout`.
        """
        fmt = format if format is not None else self.format
        algorithm = engine if engine is not None else self.engine
        renderer = renderer if renderer is not None else self.renderer
        formatter = formatter if formatter is not None else self.formatter
        # graphviz's own checks and messages for the names (its public sets of known values).
        for kind, value, known in (("engine", algorithm, graphviz.ENGINES),
                                   ("format", fmt, graphviz.FORMATS),
                                   ("renderer", renderer, graphviz.RENDERERS),
                                   ("formatter", formatter, graphviz.FORMATTERS)):
            if value is not None and value.lower() not in known:
                raise ValueError(f"unknown {kind}: {value!r}")
        if formatter is not None and renderer is None:
            raise graphviz.RequiredArgumentError("formatter given without renderer")
        flag = ":".join(x for x in (fmt, renderer, formatter) if x is not None)
        data = layout(self.source, flag, timeout=default_timeout(self.timeout), algorithm=algorithm,
                      no_op=int(neato_no_op) if neato_no_op else None)
        return data.decode(encoding) if encoding is not None else data


def to_source(dot_source: str, timeout: float = LAYOUT_TIMEOUT) -> BoundedSource:
    """``dot_source`` as a :class:`BoundedSource`, SVG by default (both engines have it; a
    plain ``Source`` defaults to PDF, which graphviz-pure does not draw)."""
    return BoundedSource(dot_source, format="svg", engine="dot", timeout=timeout)
