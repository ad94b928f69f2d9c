"""CPU and gloo for the DDP examples, which are written for one GPU per rank.

pytorch/examples' distributed/ddp and ddp-tutorial-series call ``torch.accelerator``,
``torch.cuda.set_device``, ``init_process_group("nccl")``, ``.to(rank)`` and
``DDP(device_ids=[rank])``. This machine has no GPU, so for those runs (``GP_CPU_SHIM=1``) the
harness maps each of them to its CPU meaning: the CPU device, the gloo backend, no device ids.
The examples' own logic is unchanged, and the oracle run and the graphprobe run get the same
shim.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

_cpu = torch.device("cpu")


def _dev(d: Any) -> Any:
    if (isinstance(d, int) and not isinstance(d, bool)) or (isinstance(d, str) and d.startswith("cuda")) or (
            isinstance(d, torch.device) and d.type == "cuda"):
        return _cpu
    return d


torch.accelerator.current_accelerator = lambda *a, **k: _cpu  # type: ignore[assignment]
# ddp/example.py checks for two GPUs and exits without them: the ranks' CPUs stand in.
torch.accelerator.is_available = lambda: True  # type: ignore[assignment]
torch.accelerator.device_count = lambda: int(os.environ.get("WORLD_SIZE", "1"))  # type: ignore[assignment]
torch.accelerator.set_device_index = lambda *a, **k: None  # type: ignore[assignment]
torch.cuda.set_device = lambda *a, **k: None  # type: ignore[assignment]
dist.get_default_backend_for_device = lambda *a, **k: "gloo"  # type: ignore[assignment]
# DataLoader(pin_memory=True) pins for the accelerator that is_available() now claims.
torch.Tensor.pin_memory = lambda self, *a, **k: self  # type: ignore[method-assign]

_init = dist.init_process_group


def _init_pg(backend: Any = None, *a: Any, **k: Any) -> Any:
    return _init("gloo", *a, **k)


dist.init_process_group = _init_pg  # type: ignore[assignment]

_t_to, _m_to = torch.Tensor.to, nn.Module.to


def _tensor_to(self: torch.Tensor, *a: Any, **k: Any) -> Any:
    return _t_to(self, *[_dev(x) for x in a], **{n: _dev(v) if n == "device" else v for n, v in k.items()})


def _module_to(self: nn.Module, *a: Any, **k: Any) -> Any:
    return _m_to(self, *[_dev(x) for x in a], **{n: _dev(v) if n == "device" else v for n, v in k.items()})


torch.Tensor.to = _tensor_to  # type: ignore[method-assign]
nn.Module.to = _module_to  # type: ignore[method-assign]

_ddp_init = DistributedDataParallel.__init__


def _ddp(self: Any, module: Any, device_ids: Any = None, *a: Any, **k: Any) -> None:
    _ddp_init(self, module, None, *a, **k)


DistributedDataParallel.__init__ = _ddp  # type: ignore[method-assign]

if os.environ.get("GP_CPU_SHIM") == "all":
    # The e2e Pseudo-LiDAR code makes tensors with device='cuda' and calls .cuda() throughout
    # (depth_to_pcl, torchCalib, PSMNet, PIXOR's fusion), and torch.cuda.FloatTensor(...).
    import functools

    def _factory(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            if "device" in k:
                k["device"] = _dev(k["device"])
            k.pop("devices", None)  # a typo in the repo (submodule.py), on a path it never runs
            return fn(*a, **k)
        return wrapper

    for _n in ("arange", "zeros", "ones", "empty", "full", "linspace", "tensor", "rand", "randn",
               "randint", "eye", "zeros_like", "ones_like", "full_like", "as_tensor"):
        setattr(torch, _n, _factory(getattr(torch, _n)))
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.cuda.FloatTensor = torch.FloatTensor  # type: ignore[misc,assignment]
    torch.cuda.LongTensor = torch.LongTensor  # type: ignore[misc,assignment]
