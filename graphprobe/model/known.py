"""Names of one program's parameters, modules and optimizers: what the walk labels nodes with.

Filled by :mod:`graphprobe.record.names` (which searches the user's frames for them); read by the
walk and the analyses. Plain data: nothing here searches or imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Container

__all__ = ["ParamInfo", "Known", "unique_name", "finish_names"]


def unique_name(base: str, taken: Container[str]) -> str:
    """``base``, or ``base#2``, ``base#3`` ... whichever is not in ``taken`` first (the caller adds it)."""
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}#{k}"
    return name


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
    uninitialized: list[str] = field(default_factory=list)  # lazy parameters, left out of params
    optimizer_ids: dict[int, str] = field(default_factory=dict)  # id() of each optimizer -> its name
    #: FSDP2: a sharded parameter's id -> the unsharded one the graph holds (see graphprobe.record.fsdp)
    twins: dict[int, Any] = field(default_factory=dict)

    def module_path(self, module: Any) -> str:
        """The path of a module object, or its class name when it was not found by name."""
        path = self.modules.get(id(module))
        return path if path is not None else type(module).__name__

    def merged(self, other: "Known") -> "Known":
        """These names, and what only ``other`` found (named as there, ``#2`` where taken).

        The runner names what each backward of a step can see, the earliest first: a script
        may rebind ``model`` or leave the method before the step ends.
        Complexity: O(P + M) over both.
        """
        out = Known(dict(self.params), dict(self.modules), list(self.optimizers),
                    list(self.uninitialized), dict(self.optimizer_ids), {**other.twins, **self.twins})
        rename: dict[str, str] = {}
        for oid, name in other.optimizer_ids.items():
            new = out.optimizer_ids.get(oid)
            if new is None:
                new = unique_name(name, out.optimizers)
                out.optimizer_ids[oid] = new
                out.optimizers.append(new)
            rename[name] = new
        for mid, path in other.modules.items():
            out.modules.setdefault(mid, path)
        for name in other.uninitialized:
            if name not in out.uninitialized:
                out.uninitialized.append(name)
        for pid, info in other.params.items():
            opts = [rename.get(o, o) for o in info.optimizers]
            mine = out.params.get(pid)
            if mine is None:
                out.params[pid] = ParamInfo(info.name, info.module, info.tensor, opts, info.is_module_param)
            else:
                out.params[pid] = ParamInfo(mine.name, mine.module, mine.tensor,
                                            mine.optimizers + [o for o in opts if o not in mine.optimizers],
                                            mine.is_module_param)
        finish_names(out)
        return out


def finish_names(known: Known) -> None:
    """Number the parameters in order; two found under one name: the second is ``#2``."""
    taken: set[str] = set()
    for i, info in enumerate(known.params.values()):
        info.order = i
        info.name = unique_name(info.name, taken)
        taken.add(info.name)
