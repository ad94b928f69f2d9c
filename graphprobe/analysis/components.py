"""Components: groups of losses and parameters joined through the autograd graph."""
from __future__ import annotations

from typing import Any

from ..graph import ProbeGraph

__all__ = ["components", "number_of_components"]


def _find(parent: list[int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def components(g: ProbeGraph) -> list[dict[str, list[str]]]:
    """Weakly connected pieces of the autograd graph that hold a loss or a parameter.

    Returns
    -------
    list of dict
        ``{"losses": [...], "params": [...]}`` per component, ordered by smallest node id.
        Cut edges do not join components: that is the point of showing them. Parameters that
        no walk met (no edge at all: an unused module, or one cut off) are grouped by their
        top-level module, so an unused 12-parameter layer counts once, not twelve times.

    Notes
    -----
    Complexity: O((V + E) a(V)) with an iterative union-find (path halving, union by size).
    """
    n = len(g.kind)
    parent = list(range(n))
    size = [1] * n
    for s, d in zip(g.src, g.dst):
        a, b = _find(parent, s), _find(parent, d)
        if a != b:
            if size[a] < size[b]:
                a, b = b, a
            parent[b] = a
            size[a] += size[b]
    groups: dict[Any, dict[str, list[str]]] = {}
    order: list[Any] = []
    touched = [False] * n
    for s, d in zip(g.src, g.dst):
        touched[s] = touched[d] = True
    for v, k in enumerate(g.kind):
        if k not in ("loss", "param") or v in g.frozen:
            continue
        r: Any = _find(parent, v)
        if k == "param" and not touched[v] and g.module[v]:
            r = ("module", g.module[v].split(".")[0])
        if r not in groups:
            groups[r] = {"losses": [], "params": []}
            order.append(r)
        groups[r]["losses" if k == "loss" else "params"].append(g.label[v])
    return [groups[r] for r in order]


def number_of_components(g: ProbeGraph) -> int:
    """The number of :func:`components`. Complexity: as :func:`components`."""
    return len(components(g))
