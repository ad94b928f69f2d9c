"""Pure-torch ``scatter_mean``, as torch_scatter computes it (the compiled package has no CPU wheel here).

torch_scatter's ``scatter_mean(src, index)`` is ``scatter_sum`` (a ``scatter_add_`` into zeros)
divided by the per-index counts (also a ``scatter_add_``), clamped to 1. The BEV voxelizer of
the e2e code, ``gen_feature_diffused_tensor``, calls it with 1-D ``src`` and ``index``.
"""
from __future__ import annotations

from typing import Any

import torch


def _broadcast(index: torch.Tensor, src: torch.Tensor, dim: int) -> torch.Tensor:
    if dim < 0:
        dim = src.dim() + dim
    if index.dim() == 1:
        for _ in range(0, dim):
            index = index.unsqueeze(0)
    for _ in range(index.dim(), src.dim()):
        index = index.unsqueeze(-1)
    return index.expand(src.size())


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: Any = None,
                dim_size: int | None = None) -> torch.Tensor:
    index = _broadcast(index, src, dim)
    if out is None:
        size = list(src.size())
        size[dim] = dim_size if dim_size is not None else (int(index.max()) + 1 if index.numel() else 0)
        out = torch.zeros(size, dtype=src.dtype, device=src.device)
    return out.scatter_add_(dim, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim: int = -1, out: Any = None,
                 dim_size: int | None = None) -> torch.Tensor:
    out = scatter_sum(src, index, dim, out, dim_size)
    dim_size = out.size(dim)
    index_dim = dim if dim >= 0 else dim + src.dim()
    if index.dim() <= index_dim:
        index_dim = index.dim() - 1
    ones = torch.ones(index.size(), dtype=src.dtype, device=src.device)
    count = scatter_sum(ones, index, index_dim, None, dim_size)
    count[count < 1] = 1
    count = _broadcast(count, out, dim)
    if out.is_floating_point():
        out.true_divide_(count)
    else:
        out.div_(count, rounding_mode="floor")
    return out
