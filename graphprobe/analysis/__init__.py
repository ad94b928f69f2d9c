"""The analyses: plain functions over a :class:`~graphprobe.model.graph.ProbeGraph`, networkx style.

Each takes the graph first and returns plain data. Reachability is computed once as one bitset
per node (bit ``i`` set when loss ``i`` reaches the node) and passed on with ``masks=``.
"""
from __future__ import annotations

from .connectivity import components, number_of_components
from .cuts import blocked_by_cut
from .detached import frozen, reentry_leaves, unreached
from .freed import freed_nodes
from .reach import loss_masks, reaches, reached_by, upstream
from .sharing import shared

__all__ = [
    "loss_masks",
    "reaches",
    "reached_by",
    "upstream",
    "components",
    "number_of_components",
    "shared",
    "unreached",
    "reentry_leaves",
    "frozen",
    "freed_nodes",
    "blocked_by_cut",
]
