"""FSDP2 (``torch.distributed.fsdp.fully_shard``): the parameter the autograd graph holds.

A module under ``fully_shard`` registers each parameter as a sharded ``DTensor`` (what
``model.parameters()`` and so the optimizer hold), but its forward runs on an all-gathered,
unsharded ``nn.Parameter`` of the full shape: that is the leaf of the autograd graph, and FSDP
reduce-scatters its gradient into the sharded one after backward. graphprobe names and reports
the unsharded twin, under the name the sharded one has in the module (``model.trunk.weight``),
with the optimizers that hold the sharded one. Read from FSDP's own state only, nothing imported:
any torch without FSDP2, or a module not under it, gives no twins.
"""
from __future__ import annotations

from typing import Any

__all__ = ["unsharded_twins"]


def unsharded_twins(module: Any) -> dict[int, Any]:
    """``id(p) -> the unsharded parameter`` for each FSDP2-managed parameter in ``module``'s tree.

    Both the sharded parameter and the unsharded one map to the unsharded one (a root module
    that is not resharded after forward holds the unsharded one between steps). Parameters FSDP
    has not yet all-gathered (before the first forward) have no twin yet and are left out.

    Complexity: O(modules + parameters) of the tree.
    """
    twins: dict[int, Any] = {}
    for sub in module.modules():
        get_state = getattr(type(sub), "_get_fsdp_state", None)
        if get_state is None:
            continue
        try:
            group = getattr(get_state(sub), "_fsdp_param_group", None)
            fsdp_params = list(getattr(group, "fsdp_params", None) or ())
        except Exception:  # a torch whose FSDP2 internals differ: no twins, names as before
            continue
        for fp in fsdp_params:
            unsharded = getattr(fp, "_unsharded_param", None)
            sharded = getattr(fp, "sharded_param", None)
            if unsharded is None or sharded is None:
                continue
            twins[id(sharded)] = unsharded
            twins[id(unsharded)] = unsharded
    return twins
