"""Detached leaves: known parameters no loss reaches, re-entry leaves, and frozen parameters."""
from __future__ import annotations

from ..model.graph import ProbeGraph
from .reach import loss_masks

__all__ = ["unreached", "reentry_leaves", "frozen"]


def unreached(g: ProbeGraph, masks: list[int] | None = None) -> list[int]:
    """Parameter nodes that require grad and that no probed loss reaches.

    Complexity: O(V) after the masks.
    """
    masks = masks if masks is not None else loss_masks(g)
    out = [v for v in g.nodes_of_kind("param") if masks[v] == 0 and v not in g.frozen and v not in g.unjudged]
    return g.in_param_order(out)


def reentry_leaves(g: ProbeGraph) -> list[int]:
    """Leaves that require grad but belong to no known module or optimizer. Complexity: O(V)."""
    return g.nodes_of_kind("reentry_leaf")


def frozen(g: ProbeGraph) -> list[int]:
    """Known parameters with ``requires_grad=False``: never walked, never called detached.

    Complexity: O(F log F).
    """
    return sorted(g.frozen)
