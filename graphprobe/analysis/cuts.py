"""Cuts: what a cut edge blocks, given the autograd reachability on both sides."""
from __future__ import annotations

from ..model.graph import ProbeGraph
from .reach import _bits, loss_masks, upstream

__all__ = ["blocked_by_cut"]


def blocked_by_cut(g: ProbeGraph, src: int | list[int], dst: int, masks: list[int] | None = None) -> list[dict]:
    """For a cut ``src -> dst``, each loss downstream of it and the upstream params it can't reach.

    ``src`` may be a list: a cut out of a ``no_grad`` block starts at every parameter it used.

    Returns
    -------
    list of dict
        ``{"loss": name, "params": [names]}`` for each loss that reaches ``dst`` and misses at
        least one parameter upstream of ``src``.

    Notes
    -----
    Complexity: O(V + E) per source for the upstream search.
    """
    masks = masks if masks is not None else loss_masks(g)
    up: list[int] = []
    seen: set[int] = set()
    for s in ([src] if isinstance(src, int) else src):
        for v in upstream(g, s):
            if g.kind[v] == "param" and v not in seen:
                seen.add(v)
                up.append(v)
    up = g.in_param_order(up)
    out = []
    for i in _bits(masks[dst]):
        lid = g.losses[i]
        missing = [g.label[v] for v in up if not masks[v] & (1 << i)]
        if missing:
            out.append({"loss": g.label[lid], "params": missing})
    return out
