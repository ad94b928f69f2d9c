"""The renderers: DOT text for Graphviz, and the engine that lays it out as SVG or PNG."""
from __future__ import annotations

from .dot import DotOptions, quote, to_dot
from .engine import find_engine, layout

__all__ = ["DotOptions", "to_dot", "quote", "find_engine", "layout"]
