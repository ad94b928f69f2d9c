"""Pictures: a view laid out as SVG or PNG, bounded in size, time and memory; one is always written.

The view (:func:`~graphprobe.render.collapse.make_view`) is laid out by the engine under a time
limit and an address-space limit. When the engine runs out of either, or fails, the picture is
drawn again from a coarser view (top-level modules only), and then, if even that fails, as a
single card that says what happened: a picture is always written, and its title says that it
fell back and why.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .. import progress
from ..errors import LayoutEngineMissing, LayoutTimeout, OutputError
from .collapse import DEFAULT_BUDGET, View, make_view
from .dot import DotOptions, quote, view_dot
from .engine import RASTER_FORMATS, LayoutOutOfMemory, default_timeout, layout

if TYPE_CHECKING:
    from ..model.report import ReportData

__all__ = ["render_image", "render_view", "LAYOUT_TIMEOUT", "MAX_PIXELS"]

#: Seconds the layout engine gets before graphprobe draws a coarser view instead.
LAYOUT_TIMEOUT = 60.0
#: The longest side of a raster picture, in pixels.
MAX_PIXELS = 4000
_RASTER_DPI = 144.0


def _why(e: OutputError) -> str:
    if isinstance(e, LayoutTimeout):
        return "the layout ran out of time"
    if isinstance(e, LayoutOutOfMemory):
        return "the layout engine ran out of memory"
    return "the layout engine failed"


def _sized(opts: DotOptions, fmt: str) -> DotOptions:
    """Options whose size cap keeps a raster picture within :data:`MAX_PIXELS`."""
    if fmt.split(":")[0].lower() in RASTER_FORMATS and opts.max_size:
        return replace(opts, max_size=min(opts.max_size, MAX_PIXELS * 72.0 / _RASTER_DPI))
    return opts


def _card(report: "ReportData", why: str) -> str:
    """The last resort: one box with the verdict and what went wrong; any engine lays it out."""
    text = report.verdict() + "\n\n" + why + "\nSee the text or JSON report for every finding."
    return ("digraph graphprobe {\n  graph [bgcolor=\"white\", pad=\"0.3\"];\n"
            f"  card [shape=\"box\", style=\"rounded\", fontname=\"Helvetica\", fontsize=\"12\", "
            f"label={quote(text)}];\n}}\n")


def render_view(view: View, fmt: str, options: DotOptions | None = None,
                timeout: float = LAYOUT_TIMEOUT) -> tuple[bytes, View]:
    """Lay out ``view`` in ``fmt``; on a timeout, memory or engine failure, a coarser one.

    Returns
    -------
    (bytes, View)
        The drawing and the view it draws (the coarser one when it fell back), so that a page
        built around the picture uses the ids that are drawn.

    Raises
    ------
    LayoutEngineMissing
        When no engine is installed (no fallback can help).
    """
    opts = _sized(options or DotOptions(), fmt)
    timeout = default_timeout(timeout)
    dot = view_dot(view, opts)
    n = dot.count("\n")
    if n > 500:
        progress.note(f"laying out {n} DOT lines as {fmt}")
    try:
        return layout(dot, fmt, timeout=timeout), view
    except LayoutEngineMissing:
        raise
    except OutputError as e:
        first = e
    report = view.original
    coarse_budget = min(opts.budget or DEFAULT_BUDGET, DEFAULT_BUDGET)
    coarse = make_view(report, 1, (), coarse_budget)
    why = _why(first)
    if len(coarse.report.model) < len(view.report.model):
        progress.note(f"{why} on {len(view.report.model)} nodes; fell back to the module-level view")
        title = (opts.title if opts.title is not None else report.verdict()) + (
            f"\n(fell back: {why} on {len(view.report.model)} nodes, so this is the module-level "
            f"view, {coarse.note.split(': ', 1)[-1]})")
        try:
            return layout(view_dot(coarse, opts, title=title), fmt, timeout=timeout), coarse
        except LayoutEngineMissing:
            raise
        except OutputError as e:
            why = _why(e) + " even on the module-level view"
    progress.note(f"{why}; fell back to a card with the verdict")
    return layout(_card(report, f"(fell back: {why}; no graph drawn)"), fmt, timeout=timeout), coarse


def render_image(report: "ReportData", fmt: str, options: DotOptions | None = None,
                 timeout: float = LAYOUT_TIMEOUT) -> bytes:
    """Lay out the report's view in ``fmt`` (``svg``, ``png`` ...), falling back as
    :func:`render_view` does; the picture is at most 3,000 pt (4,000 px) on its long side."""
    opts = options or DotOptions()
    view = make_view(report, opts.depth, tuple(opts.expand), opts.budget)
    return render_view(view, fmt, opts, timeout)[0]
