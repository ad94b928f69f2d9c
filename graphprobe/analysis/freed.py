"""Freed nodes: saved tensors an earlier backward already released."""
from __future__ import annotations

from ..model.graph import ProbeGraph
from .reach import _bits, loss_masks

__all__ = ["freed_nodes"]


def freed_nodes(g: ProbeGraph, masks: list[int] | None = None) -> list[dict]:
    """Freed nodes with the losses whose backward will fail on them.

    Returns
    -------
    list of dict
        ``{"node", "op", "module", "losses"}`` per freed node, in id order.

    Notes
    -----
    Complexity: O(F x L) after the masks, F freed nodes and L losses. Which nodes are freed is
    found during the walk (:func:`graphprobe.walk.walker.is_freed`).
    """
    masks = masks if masks is not None else loss_masks(g)
    return [
        {"node": v, "op": g.op[v], "module": g.module[v],
         "losses": [g.label[g.losses[i]] for i in _bits(masks[v])]}
        for v in sorted(g.freed)
    ]
