"""Pictures: DOT laid out as SVG or PNG, falling back to a coarser view when layout takes too long."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .. import progress
from ..errors import LayoutTimeout
from .dot import DotOptions, to_dot
from .engine import layout

if TYPE_CHECKING:
    from ..report import Report

__all__ = ["render_image", "LAYOUT_TIMEOUT"]

#: Seconds the layout engine gets before graphprobe draws a coarser view instead.
LAYOUT_TIMEOUT = 60.0


def render_image(report: "Report", fmt: str, options: DotOptions | None = None,
                 timeout: float = LAYOUT_TIMEOUT) -> bytes:
    """Lay out the report's graph in ``fmt`` (``svg``, ``png`` ...).

    If the engine runs past ``timeout``, say so and draw the module-level view (depth 1)
    instead of hanging; if even that is too slow, raise :class:`~graphprobe.errors.LayoutTimeout`.
    """
    opts = options or DotOptions()
    dot = to_dot(report, opts)
    n = dot.count("\n")
    if n > 500:
        progress.note(f"laying out {n} DOT lines as {fmt}")
    try:
        return layout(dot, fmt, timeout=timeout)
    except LayoutTimeout:
        if opts.depth == 1:
            raise
        progress.note(f"layout took over {timeout:g} s; drawing the module-level view instead")
        coarse = replace(opts, depth=1, expand=())
        return layout(to_dot(report, coarse), fmt, timeout=timeout)
