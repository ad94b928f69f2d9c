"""What a function's source says about its names: where each is bound, and inside which loop.

Read from the source file (``linecache``) and parsed once per function; used to tell a loop's
variables (``net`` in ``for net in nets``, one step's ``log_prob``) from names bound once.
"""
from __future__ import annotations

import ast
import linecache
import types

__all__ = ["loop_spans"]

_LOOP_NAMES: dict[tuple[str, int], dict[str, list[tuple[int, int] | None]] | None] = {}


def _bindings(scope: ast.AST) -> dict[str, list[tuple[int, int] | None]]:
    """For each name a function (or module) binds: per binding, the lines of the innermost loop around it, or None.

    Nested functions and classes are other scopes and are skipped (iterative walk).
    """
    out: dict[str, list[tuple[int, int] | None]] = {}
    stack: list[tuple[ast.AST, tuple[int, int] | None]] = [(c, None) for c in ast.iter_child_nodes(scope)]
    while stack:
        node, loop = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
                             ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.setdefault(node.id, []).append(loop)
        inner = loop
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            inner = (node.lineno, node.end_lineno or node.lineno)
        for c in ast.iter_child_nodes(node):
            stack.append((c, inner))
    return out


def _scope_of(code: types.CodeType) -> ast.AST | None:
    """The syntax tree of the function (or module) ``code`` runs, from its source; None if unreadable."""
    src = "".join(linecache.getlines(code.co_filename))
    try:
        tree = ast.parse(src) if src else None
    except (SyntaxError, ValueError):
        return None
    if tree is None or code.co_name == "<module>":
        return tree
    first = code.co_firstlineno  # a decorated function's code starts at its first decorator
    for node in ast.walk(tree):
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == code.co_name
                and first in (node.lineno, *(d.lineno for d in node.decorator_list))):
            return node
    return None


def loop_spans(code: types.CodeType) -> dict[str, list[tuple[int, int] | None]] | None:
    """For each name ``code``'s function (or module) binds: per binding, the lines of the innermost loop around it, or None.

    None when the source can't be read or parsed. Cached per function. For ``total = 0`` then
    ``for x in xs: total = total + x`` on lines 3-4: ``{"total": [None, (3, 4)], "x": [(3, 4)]}``.
    """
    key = (code.co_filename, code.co_firstlineno)
    if key not in _LOOP_NAMES:
        scope = _scope_of(code)
        _LOOP_NAMES[key] = _bindings(scope) if scope is not None else None
    return _LOOP_NAMES[key]
