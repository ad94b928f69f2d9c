"""Reachability: which loss reaches which node, as one bitset per node, in one pass."""
from __future__ import annotations

from collections import deque

from ..model.graph import ProbeGraph

__all__ = ["loss_masks", "reaches", "reached_by", "upstream"]


def loss_masks(g: ProbeGraph) -> list[int]:
    """Bit ``i`` of ``masks[v]`` is set when the ``i``-th loss reaches node ``v`` through autograd.

    Parameters
    ----------
    g : ProbeGraph

    Returns
    -------
    list of int
        One Python-int bitset per node.

    Notes
    -----
    Complexity: O(V + E) bitset operations (one machine word up to 64 losses; Python ints beyond) (Kahn's order from the losses
    toward the leaves; a node is finished once all its consumers are). Cut edges are ignored:
    they are not autograd edges.

    Examples
    --------
    >>> import torch, graphprobe
    >>> w = torch.ones(2, requires_grad=True)
    >>> r = graphprobe.probe((w * 2).sum(), names=["l"], params={"w": w})
    >>> loss_masks(r.model)[r.model.losses[0]]
    1
    """
    n = len(g.kind)
    masks = [0] * n
    for i, lid in enumerate(g.losses):
        masks[lid] |= 1 << i
    producers = g.producers()
    pending = [0] * n  # consumers not yet finished
    for s in g.src:
        pending[s] += 1
    queue = deque(v for v in range(n) if pending[v] == 0)
    while queue:
        v = queue.popleft()
        mv = masks[v]
        for p in producers[v]:
            masks[p] |= mv
            pending[p] -= 1
            if pending[p] == 0:
                queue.append(p)
    return masks


def _bits(mask: int) -> list[int]:
    out = []
    i = 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return out


def reached_by(g: ProbeGraph, node: int, masks: list[int] | None = None) -> list[str]:
    """The names of the losses that reach ``node``. Complexity: O(L) given ``masks``."""
    masks = masks if masks is not None else loss_masks(g)
    return [g.label[g.losses[i]] for i in _bits(masks[node])]


def reaches(g: ProbeGraph, masks: list[int] | None = None) -> dict[str, list[str]]:
    """For each loss name, the parameter names it reaches, in registration order.

    Notes
    -----
    Complexity: O(V + E) for the masks, then O(P x L) over parameters and losses.
    """
    masks = masks if masks is not None else loss_masks(g)
    out: dict[str, list[str]] = {g.label[lid]: [] for lid in g.losses}
    for v in g.in_param_order(g.nodes_of_kind("param")):
        for i in _bits(masks[v]):
            out[g.label[g.losses[i]]].append(g.label[v])
    return out


def upstream(g: ProbeGraph, start: int) -> list[int]:
    """Every node ``start`` depends on through autograd (itself included), breadth first.

    Complexity: O(V + E) in the worst case, with an explicit queue.
    """
    producers = g.producers()
    seen = {start}
    order = [start]
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for p in producers[v]:
            if p not in seen:
                seen.add(p)
                order.append(p)
                queue.append(p)
    return order
