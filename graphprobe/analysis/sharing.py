"""Shared subgraphs: maximal connected pieces that two or more losses reach."""
from __future__ import annotations

from ..model.graph import ProbeGraph
from .reach import _bits, loss_masks

__all__ = ["shared"]


def shared(g: ProbeGraph, masks: list[int] | None = None) -> list[dict[str, list]]:
    """Pieces of the graph reached by at least two (non-composite) losses.

    A piece is a connected set of nodes reached by the same losses. A composite loss
    (``loss1 + loss2`` whose terms are losses too) is left out of the count: it shares
    everything with its own terms by construction.

    Returns
    -------
    list of dict
        ``{"losses": [...], "params": [...], "nodes": [ids]}``, ordered by smallest node id.

    Notes
    -----
    Complexity: O(V + E) after the masks (one iterative flood fill per piece).
    """
    if len(g.losses) - len(g.composite) < 2:
        return []  # one loss shares nothing
    masks = masks if masks is not None else loss_masks(g)
    drop = 0
    for i, lid in enumerate(g.losses):
        if lid in g.composite:
            drop |= 1 << i
    keep = ~drop
    eff = [m & keep for m in masks]
    n = len(g.kind)
    multi = [m & (m - 1) != 0 for m in eff]  # two or more bits
    if not any(multi):
        return []
    adj: list[list[int]] = [[] for _ in range(n)]
    for s, d in zip(g.src, g.dst):
        if multi[s] and multi[d] and eff[s] == eff[d]:
            adj[s].append(d)
            adj[d].append(s)
    seen = [False] * n
    out: list[dict[str, list]] = []
    for v in range(n):
        if not multi[v] or seen[v] or g.kind[v] == "loss":
            continue
        seen[v] = True
        piece = [v]
        stack = [v]
        while stack:
            u = stack.pop()
            for w in adj[u]:
                if not seen[w]:
                    seen[w] = True
                    piece.append(w)
                    stack.append(w)
        piece.sort()
        out.append({
            "losses": [g.label[g.losses[i]] for i in _bits(eff[v])],
            "params": [g.label[u] for u in piece if g.kind[u] == "param"],
            "nodes": piece,
        })
    return out
