"""The user's source, read cheaply: a line's text, and the ``with torch.no_grad():`` around a line.

Files are read through ``linecache`` (the runner puts a relative script there) and parsed with
``ast`` once per file version. A bottom module: the recorder and the analysis both use it.
"""
from __future__ import annotations

import ast
import linecache
from typing import Any

from ..locations import split_location

__all__ = ["source_line", "enclosing_no_grad"]

_SOURCE_CACHE: dict[str, tuple[int, Any]] = {}


def source_line(loc: str | None) -> str:
    """The stripped source line at ``loc`` (``path:line``), or ``""``."""
    path, line = split_location(loc)
    if line is None:
        return ""
    return linecache.getline(path, line).strip()


def _tree(path: str) -> Any:
    lines = linecache.getlines(path)
    key = len(lines)
    hit = _SOURCE_CACHE.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        tree: Any = ast.parse("".join(lines)) if lines else None
    except (SyntaxError, ValueError):
        tree = None
    _SOURCE_CACHE[path] = (key, tree)
    return tree


def _is_no_grad(expr: ast.AST) -> bool:
    text = ast.unparse(expr) if hasattr(ast, "unparse") else ""
    return "no_grad" in text or "inference_mode" in text or "set_grad_enabled(False" in text


def enclosing_no_grad(loc: str | None) -> str | None:
    """``path:N`` of the innermost ``with torch.no_grad():`` (or ``@torch.no_grad()``) around ``loc``.

    Notes
    -----
    Parses the file once (cached); O(nodes of the file) the first time, then O(nodes) per call.
    """
    path, line = split_location(loc)
    if line is None:
        return None
    tree = _tree(path)
    if tree is None:
        return None
    best: int | None = None
    for node in ast.walk(tree):
        start, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        if start is None or end is None or not (start <= line <= end):
            continue
        if isinstance(node, (ast.With, ast.AsyncWith)) and any(_is_no_grad(it.context_expr) for it in node.items):
            if node.lineno < line and (best is None or node.lineno > best):
                best = node.lineno
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                if _is_no_grad(dec) and (best is None or dec.lineno > best):
                    best = dec.lineno
    return f"{path}:{best}" if best is not None else None
