"""The report: the analyses' findings over one graph, as text, JSON, DOT, SVG, PNG and HTML.

:class:`Report` is :class:`graphprobe.model.report.ReportData` (the findings, the verdict and
the versioned JSON contract, documented there) plus its renderers and networkx views. This
module sits above :mod:`graphprobe.render` and :mod:`graphprobe.model.nxview`, which take the report
as a ``ReportData`` and never import this module.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .model.findings import SEVERITIES
from .model.report import ReportData
from .model.version import SCHEMA_VERSION

if TYPE_CHECKING:
    from .render.gv import BoundedSource

# The renderers and the networkx view are imported where they are used, as before: importing
# the report stays cheap (the CLI imports it before the script runs).

__all__ = ["Report", "SCHEMA_VERSION", "SEVERITIES"]


class Report(ReportData):
    """What :func:`graphprobe.probe` found. ``print(report)`` gives the text report."""

    # -- the graph --------------------------------------------------------------------------
    @functools.cached_property
    def graph(self) -> Any:
        """The autograd graph alone as a ``networkx.DiGraph`` (data-flow direction), built once.

        Algorithms on it agree with the report (``nx.ancestors`` of a loss node holds the
        parameters it reaches); cut edges are in :attr:`graph_with_cuts`. Every attribute is
        GraphML-safe; ``G.graph`` holds the verdict, the losses and the schema version. See
        :mod:`graphprobe.model.nxview`.
        """
        from .model.nxview import to_networkx

        return to_networkx(self.model, self)

    @functools.cached_property
    def graph_with_cuts(self) -> Any:
        """:attr:`graph` plus the recorder's cut edges (``kind="cut"``), for drawing them.

        Not for reachability: a cut edge carries no gradient. ``graphprobe.model.nxview.data_edges``
        gives the autograd part back.
        """
        from .model.nxview import to_networkx

        return to_networkx(self.model, self, cuts=True)

    def to_text(self, color: bool = False) -> str:
        """The text report: verdict, reaches, shared, findings with fixes."""
        from .render.text import render_text

        return render_text(self, color=color)

    def __str__(self) -> str:
        return self.to_text()

    # -- notebooks ---------------------------------------------------------------------------
    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text() if not cycle else repr(self))

    def _svg_or_none(self) -> str | None:
        from .errors import GraphprobeError

        try:
            return self.to_svg()
        except GraphprobeError:
            return None  # no layout engine, or too big to lay out: the text still shows

    def _repr_svg_(self) -> str | None:
        return self._svg_or_none()

    def _repr_html_(self) -> str:
        return self._html_card(self._svg_or_none())

    def _html_card(self, svg: str | None) -> str:
        """The verdict, the picture ``svg`` (if any) and the text report folded, as HTML."""
        import html

        svg = svg or ""
        # Drop the XML prolog so the SVG can sit inside the notebook's HTML.
        start = svg.find("<svg")
        svg = svg[start:] if start >= 0 else ""
        return (f'<div class="graphprobe"><div style="font-family:sans-serif;font-weight:bold;'
                f'margin:4px 0">{html.escape(self.verdict())}</div>{svg}'
                f'<details><summary>report</summary><pre>{html.escape(self.to_text())}</pre></details></div>')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        # One layout for the bundle: the HTML and the SVG entries hold the same picture.
        svg = self._svg_or_none()
        bundle = {"text/plain": self.to_text(), "text/html": self._html_card(svg)}
        if svg:
            bundle["image/svg+xml"] = svg
        return bundle

    def to_graphviz(self, **options: Any) -> BoundedSource:
        """The graph as a ``graphviz.Source`` of :meth:`to_dot`'s text (same ``options``).

        Jupyter displays it; ``.pipe(format="png")``, ``.render()``, ``.view()``, ``.save()``,
        ``.unflatten()`` are the graphviz package's. Its ``pipe`` (and so its display) lays out
        with graphprobe's engine and bounds, as :meth:`to_svg` does, with ``graphviz-pure`` when
        no system ``dot`` is installed; ``render``/``view``/``unflatten`` need a system Graphviz.
        Unlike :meth:`to_svg`, it draws this DOT or fails: no coarser view on a timeout. See
        :mod:`graphprobe.render.gv`.
        """
        from .render.gv import to_source

        return to_source(self.to_dot(**options))

    def to_dot(self, **options: Any) -> str:
        """The graph in Graphviz DOT: module clusters, cut edges in red, a legend."""
        from .render.dot import DotOptions, to_dot

        return to_dot(self, DotOptions(**options))

    def to_svg(self, path: str | None = None, **options: Any) -> str:
        """Lay out with ``dot`` (or ``graphviz-pure``) and return the SVG; write it if ``path``.

        ``options`` are :class:`~graphprobe.render.dot.DotOptions` fields (``title``, ``depth``,
        ``expand``, ``budget`` ...).
        """
        from .render.dot import DotOptions
        from .io import write_atomic
        from .render.image import render_image

        svg = render_image(self, "svg", DotOptions(**options)).decode("utf-8")
        if path is not None:
            write_atomic(path, svg.encode("utf-8"))
        return svg

    def to_html(self, path: str | None = None, **options: Any) -> str:
        """One self-contained HTML page: the graph (pan, zoom), the findings, a node inspector.

        It loads nothing from the network. Written atomically to ``path`` if given; ``options``
        are :class:`~graphprobe.render.dot.DotOptions` fields, as for :meth:`to_svg`.
        """
        from .io import write_atomic
        from .render.html import render_html

        page = render_html(self, **options)
        if path is not None:
            write_atomic(path, page.encode("utf-8"))
        return page

    def to_png(self, path: str, **options: Any) -> None:
        """Lay out and write a PNG to ``path`` (atomically)."""
        from .render.dot import DotOptions
        from .io import write_atomic
        from .render.image import render_image

        write_atomic(path, render_image(self, "png", DotOptions(**options)))
