"""Names found the way a person would: parameters, modules, optimizers and losses from a frame.

Parameters are named from ``params=`` (a dict, or a list of modules), else from the ``nn.Module``
objects in the caller's frame: locals first, then globals, outermost module first, so a
parameter reachable as both ``model.enc.weight`` and ``enc.weight`` is called the former.
A wrapper that only holds the user's module (DDP, DataParallel, ``torch.compile``, FSDP,
checkpoint_wrapper) adds no level: with ``model = DDP(Net())`` the head's weight is
``model.head.weight``, as it is without DDP, not ``model.module.head.weight``.
Optimizers are found the same way. Nothing here keeps a tensor alive after the probe returns:
:class:`Known` is dropped by :func:`graphprobe.probe` once the graph is built.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch
from torch import nn

__all__ = ["ParamInfo", "Known", "collect_known", "frame_namespaces", "name_of", "strip_wrapper"]

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# Module classes (matched by name along the MRO, so nothing is imported) that only hold the
# user's module, and the attribute they hold it in: that level is left out of every name.
_WRAPPERS = {
    "DistributedDataParallel": "module",
    "DataParallel": "module",
    "OptimizedModule": "_orig_mod",  # torch.compile
    "FullyShardedDataParallel": "_fsdp_wrapped_module",
    "CheckpointWrapper": "_checkpoint_wrapped_module",
    "OffloadWrapper": "_checkpoint_wrapped_module",
}


def _wrapped_attr(mod: nn.Module) -> str | None:
    """The attribute a wrapper module holds the user's module in, or None if it is no wrapper."""
    for cls in type(mod).__mro__:
        attr = _WRAPPERS.get(cls.__name__)
        if attr is not None:
            return attr
    return None


def strip_wrapper(path: str) -> str:
    """Drop the ``module.`` of DDP/DataParallel and the ``_orig_mod.`` of ``torch.compile``.

    A string rule for names that come without their modules (a ``state_dict`` key); the names
    graphprobe gives parameters leave wrappers out by the wrapper's type instead, so a user's
    own submodule called ``module`` keeps its name.
    """
    changed = True
    while changed:
        changed = False
        for p in _WRAPPER_PREFIXES:
            if path.startswith(p):
                path = path[len(p):]
                changed = True
            elif "." + p in path:
                path = path.replace("." + p, ".")
                changed = True
    return path


@dataclass
class ParamInfo:
    """What graphprobe knows of one parameter tensor."""

    name: str
    module: str | None
    tensor: Any  # held only while probing
    optimizers: list[str] = field(default_factory=list)
    is_module_param: bool = False
    order: int = 0  # registration order, for display (weight before bias)


@dataclass
class Known:
    """Parameters by ``id()``, module objects by ``id()`` -> path, optimizer names."""

    params: dict[int, ParamInfo] = field(default_factory=dict)
    modules: dict[int, str] = field(default_factory=dict)
    optimizers: list[str] = field(default_factory=list)
    #: FSDP2: a sharded parameter's id -> the unsharded one the graph holds (see graphprobe.fsdp)
    twins: dict[int, Any] = field(default_factory=dict)

    def module_path(self, module: Any) -> str:
        """The path of a module object, or its class name when it was not found by name."""
        path = self.modules.get(id(module))
        return path if path is not None else type(module).__name__


def frame_namespaces(frame: types.FrameType | None) -> list[Mapping[str, Any]]:
    """The frame's locals then globals (the order a person reads names in)."""
    if frame is None:
        return []
    if frame.f_locals is frame.f_globals:
        return [frame.f_globals]
    return [frame.f_locals, frame.f_globals]


def name_of(obj: Any, namespaces: Iterable[Mapping[str, Any]]) -> str | None:
    """The first public variable name bound to ``obj`` (by identity) in ``namespaces``."""
    for ns in namespaces:
        for k, v in list(ns.items()):
            if v is obj and not k.startswith("_"):
                return k
    return None


def _modules_in(namespaces: list[Mapping[str, Any]]) -> list[tuple[str, nn.Module]]:
    found: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    for ns in namespaces:
        for k, v in list(ns.items()):
            if isinstance(v, nn.Module) and not k.startswith("_") and id(v) not in seen:
                seen.add(id(v))
                found.append((k, v))
    return found


def _outermost_first(mods: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Put modules that no other found module contains first, keeping the found order."""
    if len(mods) < 2:
        return mods
    inner: set[int] = set()
    for _, m in mods:
        for sub in m.modules():
            if sub is not m:
                inner.add(id(sub))
    return [x for x in mods if id(x[1]) not in inner] + [x for x in mods if id(x[1]) in inner]


def _add_module(known: Known, prefix: str, mod: nn.Module) -> None:
    # Each submodule's path, the level a wrapper holds its module in left out (see _WRAPPERS).
    paths: dict[str, str] = {}
    mods: dict[str, nn.Module] = {}
    for sub_path, sub in mod.named_modules():
        if not sub_path:
            path = prefix
        else:
            parent_path, _, attr = sub_path.rpartition(".")
            parent = mods[parent_path]
            path = paths[parent_path] if _wrapped_attr(parent) == attr else f"{paths[parent_path]}.{attr}"
        paths[sub_path], mods[sub_path] = path, sub
        known.modules.setdefault(id(sub), path)
    from .fsdp import unsharded_twins

    known.twins.update(unsharded_twins(mod))
    for pname, p in mod.named_parameters(remove_duplicate=True):
        p = known.twins.get(id(p), p)  # FSDP2: name the parameter the graph holds
        if id(p) in known.params:
            continue
        owner_path, _, leaf = pname.rpartition(".")
        owner = paths.get(owner_path)
        full = f"{owner}.{leaf}" if owner is not None else strip_wrapper(f"{prefix}.{pname}")
        if owner is None:
            owner = full.rsplit(".", 1)[0]
        known.params[id(p)] = ParamInfo(full, owner, p, is_module_param=True)


def collect_known(frame: types.FrameType | None, params: Any = None) -> Known:
    """Find parameters, modules and optimizers, from ``params=`` or from ``frame``.

    Parameters
    ----------
    frame : frame or None
        The caller's frame; its locals then globals are searched.
    params : dict, list of modules, or None
        ``{"name": module_or_tensor}`` or ``[module, ...]``; overrides the frame's modules.

    Returns
    -------
    Known

    Notes
    -----
    Complexity: O(P + M) over the parameters and modules found, plus one pass over the frame.
    """
    known = Known()
    namespaces = frame_namespaces(frame)
    if params is not None:
        if isinstance(params, nn.Module):
            params = [params]
        if isinstance(params, Mapping):
            for k, v in params.items():
                if isinstance(v, nn.Module):
                    _add_module(known, str(k), v)
                elif isinstance(v, torch.Tensor):
                    known.params.setdefault(id(v), ParamInfo(str(k), None, v))
                else:
                    from .errors import ProbeInputError

                    raise ProbeInputError(
                        f"params={{{k!r}: ...}} holds a {type(v).__name__}; give nn.Modules or tensors."
                    )
        else:
            if not isinstance(params, (list, tuple)):
                from .errors import ProbeInputError

                raise ProbeInputError(
                    f"params= is a {type(params).__name__}; give a dict {{name: module or tensor}} "
                    "or a list of nn.Modules.")
            mods = list(params)
            for i, m in enumerate(mods):
                if isinstance(m, nn.Module):
                    nm = name_of(m, namespaces) or f"{type(m).__name__.lower()}{i}"
                    _add_module(known, nm, m)
                elif isinstance(m, torch.Tensor):
                    nm = name_of(m, namespaces) or f"param[{i}]"
                    known.params.setdefault(id(m), ParamInfo(nm, None, m))
                else:
                    from .errors import ProbeInputError

                    raise ProbeInputError(
                        f"params[{i}] is a {type(m).__name__}; give a dict or a list of nn.Modules."
                    )
    else:
        for name, mod in _outermost_first(_modules_in(namespaces)):
            _add_module(known, name, mod)
    # Optimizers: every one in the frame, and the parameters they hold.
    fallback: Known | None = None
    for ns in namespaces:
        for k, v in list(ns.items()):
            if isinstance(v, torch.optim.Optimizer) and not k.startswith("_") and k not in known.optimizers:
                known.optimizers.append(k)
                for gi, group in enumerate(v.param_groups):
                    for pi, p in enumerate(group["params"]):
                        p = known.twins.get(id(p), p)  # FSDP2: the optimizer holds the sharded one
                        info = known.params.get(id(p))
                        if info is None:
                            if fallback is None:
                                fallback = Known()
                                for name, mod in _outermost_first(_modules_in(namespaces)):
                                    _add_module(fallback, name, mod)
                            fb = fallback.params.get(id(p))
                            if fb is not None:
                                info = ParamInfo(fb.name, fb.module, p, is_module_param=True)
                            else:
                                nm = name_of(p, namespaces) or f"{k}.param_groups[{gi}][{pi}]"
                                info = ParamInfo(nm, None, p)
                            known.params[id(p)] = info
                        if k not in info.optimizers:
                            info.optimizers.append(k)
    # Two parameters found under one name (a local and a global `net`): the second is "#2".
    taken: set[str] = set()
    for i, info in enumerate(known.params.values()):
        info.order = i
        base, k = info.name, 1
        while info.name in taken:
            k += 1
            info.name = f"{base}#{k}"
        taken.add(info.name)
    return known
