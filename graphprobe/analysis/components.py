"""Components: groups of losses and parameters joined through the autograd graph."""
from __future__ import annotations

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
        Cut edges do not join components: that is the point of showing them.

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
    groups: dict[int, dict[str, list[str]]] = {}
    order: list[int] = []
    for v, k in enumerate(g.kind):
        if k not in ("loss", "param") or v in g.frozen:
            continue
        r = _find(parent, v)
        if r not in groups:
            groups[r] = {"losses": [], "params": []}
            order.append(r)
        groups[r]["losses" if k == "loss" else "params"].append(g.label[v])
    return [groups[r] for r in order]


def number_of_components(g: ProbeGraph) -> int:
    """The number of :func:`components`. Complexity: as :func:`components`."""
    return len(components(g))
