"""The renderers: a registry by output extension, DOT text for Graphviz, and the engine that lays it out."""
from __future__ import annotations

from .dot import DotOptions, quote, to_dot
from .engine import find_engine, layout
from .registry import Renderer, UnknownExtension, known_extensions, register, renderer_for, renderers

__all__ = ["DotOptions", "to_dot", "quote", "find_engine", "layout",
           "Renderer", "UnknownExtension", "renderer_for", "register", "renderers", "known_extensions"]
