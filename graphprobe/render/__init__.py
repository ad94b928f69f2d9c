"""The renderers: a registry by output extension, DOT text for Graphviz, and the engine that lays it out.

The names below load from their submodule on first use (PEP 562): the command line reads the
registry (:mod:`.registry`) to check an output path before the script runs, and must not pay
for the DOT writer, the engine and the data model it does not need yet.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["DotOptions", "to_dot", "quote", "find_engine", "layout",
           "Renderer", "UnknownExtension", "renderer_for", "register", "renderers", "known_extensions"]

# name -> the submodule that defines it
_LAZY = {
    "DotOptions": "dot", "to_dot": "dot", "quote": "dot",
    "find_engine": "engine", "layout": "engine",
    "Renderer": "registry", "UnknownExtension": "registry", "renderer_for": "registry",
    "register": "registry", "renderers": "registry", "known_extensions": "registry",
}

if TYPE_CHECKING:  # what a type checker and an IDE see: the eager imports
    from .dot import DotOptions, quote, to_dot
    from .engine import find_engine, layout
    from .registry import Renderer, UnknownExtension, known_extensions, register, renderer_for, renderers


def __getattr__(name: str) -> Any:
    """Load a public name from its submodule on first access, then keep it on the package."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
