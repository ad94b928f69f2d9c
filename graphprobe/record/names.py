"""Names found the way a person would: parameters, modules and optimizers, wherever the script keeps them.

Where objects are looked for, in this order (the rank of what is found):

1. the user's frames (:func:`user_frames`): the one that calls backward (or ``probe()``), then
   each frame that called it, outwards; the locals (closure variables included) of a run of
   frames in one module, innermost first, then that module's globals, then the next module's
   frames. torch's, numpy's and graphprobe's frames are skipped, and so are an installed
   library's outside the user's own code (pytest's, IPython's);
2. from each variable, what is reachable through attributes (``self.model``, ``trainer.opt``,
   a module's plain attributes such as a list of layers or its own ``self.opt``), list and tuple
   items (``nets[1]``), dict values (``opts["g"]``), a function's closure cells and an LR
   scheduler's optimizer, at most ``_MAX_HOPS`` steps away and ``_MAX_VISITS`` values in all;
3. the recorder's registries (:meth:`graphprobe.record.recorder.Trace.modules_seen`, ``optimizers_seen``):
   every module whose forward ran and every optimizer built or stepped while recording, for
   what no variable reaches. A module built and called inside another's ``forward`` is named by
   that caller (``seq.<Linear>``), one that ran from nowhere by its class (``Net``);
4. the garbage collector, bounded, only for what is still missing: an optimizer for a found
   trainable parameter no found optimizer holds (``probe()`` outside ``render``; see
   :func:`_gc_optimizers`), and, for a parameter the walk meets that nothing above named, the
   live module holding it, by class (:func:`name_hidden`).

The naming rule. Every module, optimizer and tensor gets the first path found in that order:
the most local frame first, then fewer steps from a variable, then the order variables were
bound in. Three refinements keep a name saying which object it is:

- a name bound to another object in a more local frame is shadowed there (an outer ``self``);
- a name the stack binds to several objects (``self``, a layer in the method that calls
  backward and its net in the caller) or that its code binds only inside a loop (``net`` in
  ``for net in nets``) is used only when nothing else reaches the object: ``net.layers[1]``,
  ``nets[1]`` say which;
- parameters are named through the *outermost* module found, one no other found module
  contains, so a parameter reachable as both ``model.enc.weight`` and ``enc.weight`` is called
  the former, and the path of that module is its most local one (``self.model`` in the method
  that calls backward, rather than ``trainer.model`` in its caller).

A wrapper that only holds the user's module (DDP, DataParallel, ``torch.compile``, FSDP,
checkpoint_wrapper) adds no level: with ``model = DDP(Net())`` the head's weight is
``model.head.weight``, not ``model.module.head.weight``. A parameter no module found owns is
named by a path to the tensor (``self.w``), else by its optimizer (``opt.param_groups[0][3]``).
Two different parameters that come out with one name are told apart with ``#2``. The runner
names what each backward of a step saw and merges them, the earliest first
(:meth:`Known.merged`); an uninitialised lazy parameter (``nn.LazyLinear``) is left out and
listed in ``Known.uninitialized``.

Nothing here keeps a tensor alive after the probe returns: :class:`Known` is dropped by
:func:`graphprobe.probe` once the graph is built.
"""
from __future__ import annotations

import gc
import itertools
import os
import sysconfig
import types
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import torch
from torch import nn

from ..model.known import Known, ParamInfo, finish_names, unique_name
from ..locations import is_user_file
from .scopes import loop_spans

__all__ = ["ParamInfo", "Known", "Registry", "collect_known", "name_hidden", "frame_namespaces", "unique_name",
           "user_frames", "name_of", "strip_wrapper", "is_uninitialized"]

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

_MAX_FRAMES = 64  # user frames searched, innermost first
_MAX_HOPS = 4  # attribute / item / closure steps from a variable: self.trainer.nets[1] is 3
_MAX_ITEMS = 128  # items read per list, tuple or dict
_MAX_VISITS = 20_000  # values looked at per search (a few ms): a cluttered heap stays cheap
# Objects of these packages hold no module or optimizer a user would name through them (a
# DataLoader, a DataFrame, a figure), and can be large: they are not searched.
_OPAQUE_PACKAGES = frozenset({
    "torch", "numpy", "pandas", "matplotlib", "PIL", "scipy", "sklearn", "logging", "threading",
    "multiprocessing", "queue", "socket", "ssl", "asyncio", "concurrent", "subprocess", "io",
    "_io", "sqlite3", "tkinter", "weakref", "_weakrefset", "re", "argparse",
})
_MODULE_OWN = frozenset(nn.Module().__dict__)  # nn.Module's own attributes (training, _modules...)
_SCHEDULERS = tuple(c for c in (getattr(torch.optim.lr_scheduler, "LRScheduler", None),
                                 getattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", None)) if c is not None)
# torch's base of UninitializedParameter and UninitializedBuffer (not in its public stubs).
_UNINITIALIZED: type = getattr(torch.nn.parameter, "UninitializedTensorMixin")
_ATOMS = (str, bytes, int, float, complex, bool, type(None), range, slice)


class Registry(Protocol):
    """What the recorder saw: :class:`graphprobe.record.recorder.Trace` is one."""

    def modules_seen(self) -> list[tuple[Any, Any]]: ...

    def optimizers_seen(self) -> list[Any]: ...


_WRAPPED_ATTR: dict[type, str | None] = {}  # by class: a model has few classes, many modules


def _wrapped_attr(mod: nn.Module) -> str | None:
    """The attribute a wrapper module holds the user's module in, or None if it is no wrapper."""
    t = type(mod)
    if t in _WRAPPED_ATTR:
        return _WRAPPED_ATTR[t]
    found: str | None = None
    for cls in t.__mro__:
        attr = _WRAPPERS.get(cls.__name__)
        if attr is not None:
            found = attr
            break
    if len(_WRAPPED_ATTR) < 10_000:
        _WRAPPED_ATTR[t] = found
    return found


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


def is_uninitialized(t: Any) -> bool:
    """Whether ``t`` is a lazy module's parameter or buffer not yet given a shape (``nn.LazyLinear``).

    Such a tensor raises on ``.shape`` and on hooks; it can't be in any graph until a forward
    initialises it.
    """
    return isinstance(t, _UNINITIALIZED)


# -- frames ------------------------------------------------------------------------------------
def frame_namespaces(frame: types.FrameType | None) -> list[Mapping[str, Any]]:
    """The frame's locals then globals (the order a person reads names in)."""
    if frame is None:
        return []
    if frame.f_locals is frame.f_globals:
        return [frame.f_globals]
    return [frame.f_locals, frame.f_globals]


def _library_dirs() -> tuple[str, ...]:
    dirs = set()
    for key in ("purelib", "platlib", "stdlib", "platstdlib"):
        d = sysconfig.get_paths().get(key)
        if d:
            dirs.add(os.path.realpath(d) + os.sep)
    return tuple(sorted(dirs))


_LIBRARY: dict[str, bool] = {}


def _is_library(fname: str) -> bool:
    """Code of an installed package or of the standard library (pytest's, IPython's, runpy's)."""
    r = _LIBRARY.get(fname)
    if r is None:
        global _LIBRARY_DIRS
        if _LIBRARY_DIRS is None:
            _LIBRARY_DIRS = _library_dirs()
        r = fname.startswith("<frozen") or os.path.realpath(fname).startswith(_LIBRARY_DIRS)
        _LIBRARY[fname] = r
    return r


_LIBRARY_DIRS: tuple[str, ...] | None = None


def user_frames(frame: types.FrameType | None, limit: int = _MAX_FRAMES) -> list[types.FrameType]:
    """``frame`` and the frames that called it whose names a user may know, innermost first.

    torch's, numpy's and graphprobe's frames are left out. An installed library's frames count
    until the first frame of the user's own code: a Hugging Face Trainer's method that calls
    backward holds ``self.model``; pytest's or IPython's frames around the user's code do not.
    """
    out: list[types.FrameType] = []
    f = frame
    own = False  # met a frame of the user's own code (neither a library's nor the stdlib's)
    while f is not None and len(out) < limit:
        fname = f.f_code.co_filename
        if f is frame or is_user_file(fname):
            lib = _is_library(fname)
            if not (own and lib):
                out.append(f)
            own = own or not lib
        f = f.f_back
    return out


def _stack_namespaces(frame: types.FrameType | None) -> list[tuple[Mapping[str, Any], types.FrameType | None]]:
    """The user frames' namespaces in rank order, each dict once, with the frame whose code binds them.

    Frames outwards from ``frame``; a run of consecutive frames running code of one module (a
    method and the method that called it) gives its frames' locals, innermost first, then that
    module's globals; then the next module's frames. So a module's globals come after the
    locals its own code can see (``self.model`` before ``trainer.model``), and before a caller
    in another file (a harness holding the script's namespace). A globals dict comes with the
    module's own frame when that is on the stack (the script's top level), else None.
    """
    out: list[tuple[Mapping[str, Any], types.FrameType | None]] = []
    seen: set[int] = set()
    frames = user_frames(frame)
    top = {id(f.f_globals): f for f in frames if f.f_locals is f.f_globals}

    def add(ns: Mapping[str, Any], f: types.FrameType | None) -> None:
        if id(ns) not in seen:
            seen.add(id(ns))
            out.append((ns, f))

    pending: Mapping[str, Any] | None = None
    for f in frames:
        g = f.f_globals
        if pending is not None and pending is not g:
            add(pending, top.get(id(pending)))
        pending = g
        if f.f_locals is not g:
            add(f.f_locals, f)
    if pending is not None:
        add(pending, top.get(id(pending)))
    return out


def name_of(obj: Any, namespaces: Iterable[Mapping[str, Any]]) -> str | None:
    """The first public variable name bound to ``obj`` (by identity) in ``namespaces``."""
    for ns in namespaces:
        for k, v in list(ns.items()):
            if v is obj and not k.startswith("_"):
                return k
    return None


# -- the search -----------------------------------------------------------------------------------
@dataclass
class _Found:
    """What one search found, each object once, under its best path, in rank order."""

    modules: list[tuple[str, nn.Module]] = field(default_factory=list)
    optimizers: list[tuple[str, torch.optim.Optimizer]] = field(default_factory=list)
    tensors: dict[int, str] = field(default_factory=dict)  # leaf tensors that require grad


def _key(k: Any) -> str | None:
    """``[1]``, ``["g"]``: how a user indexes a container with key ``k`` (None for other keys)."""
    if isinstance(k, bool) or not isinstance(k, (str, int)):
        return None
    if isinstance(k, str):
        return f'["{k}"]' if k.isprintable() and '"' not in k and "\\" not in k else f"[{k!r}]"
    return f"[{k}]"


def _children(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(path, value)`` one step from ``obj``: attributes, items, closure cells."""
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj[:_MAX_ITEMS]):
            yield f"{path}[{i}]", v
        return
    if isinstance(obj, dict):
        for k, v in list(itertools.islice(obj.items(), _MAX_ITEMS)):
            ks = _key(k)
            if ks is not None:
                yield f"{path}{ks}", v
        return
    if isinstance(obj, types.FunctionType):
        # A closure's variables go by the names its body uses (model, opt).
        cells = obj.__closure__ or ()
        for name, cell in zip(obj.__code__.co_freevars, cells):
            try:
                yield name, cell.cell_contents
            except ValueError:  # an empty cell
                continue
        return
    try:
        d = object.__getattribute__(obj, "__dict__")
    except Exception:  # no __dict__ (slots), or a proxy that refuses
        return
    if not isinstance(d, dict):
        return
    is_module = isinstance(obj, nn.Module)
    for k, v in list(itertools.islice(d.items(), _MAX_ITEMS)):
        if not isinstance(k, str) or k.startswith("__"):
            continue
        if is_module and (k in _MODULE_OWN or k.startswith("_")):
            continue  # submodules come from named_modules(); a plain list or an optimizer is kept
        yield f"{path}.{k}", v


# What a value is to the search, by its type (cached: a heap has few types, many values).
_SKIP, _TENSOR, _OPTIMIZER, _SEARCH = 0, 1, 2, 3
_CATEGORY: dict[type, int] = {}


def _category(t: type) -> int:
    """``_TENSOR``, ``_OPTIMIZER``, ``_SEARCH`` (may hold a module or an optimizer a user would
    name through it: a container, a module, a user's object, a closure) or ``_SKIP``.

    By type and ``issubclass``, never ``isinstance`` on the value: ``torch.Tensor``'s
    metaclass makes that check cost microseconds, and a proxy may answer ``__class__`` oddly.
    """
    c = _CATEGORY.get(t)
    if c is None:
        if issubclass(t, torch.Tensor):
            c = _TENSOR
        elif issubclass(t, torch.optim.Optimizer):
            c = _OPTIMIZER
        elif issubclass(t, _ATOMS) or issubclass(t, (type, types.ModuleType, types.BuiltinFunctionType,
                                                     types.MethodType, types.FrameType, types.CodeType)):
            c = _SKIP
        elif issubclass(t, (list, tuple, dict, types.FunctionType, nn.Module, _SCHEDULERS)):
            c = _SEARCH  # (an LR scheduler leads to its optimizer: sched.optimizer)
        else:
            mod = getattr(t, "__module__", None)
            c = _SKIP if (mod or "").partition(".")[0] in _OPAQUE_PACKAGES else _SEARCH
        if len(_CATEGORY) < 10_000:
            _CATEGORY[t] = c
    return c


def _searchable(v: Any) -> bool:
    """Whether ``v`` may hold a module or an optimizer a user would name through it."""
    return _category(type(v)) == _SEARCH


def _loop_bound(f: types.FrameType | None) -> set[str]:
    """Names the code of ``f`` binds only inside loops (``for net, opt in zip(nets, opts)``)."""
    bindings = loop_spans(f.f_code) if f is not None else None
    if not bindings:
        return set()
    return {name for name, spans in bindings.items() if spans and all(sp is not None for sp in spans)}


def _search(namespaces: Sequence[tuple[Mapping[str, Any], types.FrameType | None]]) -> _Found:
    """Breadth-first from each namespace's public variables, namespaces in rank order.

    A name bound to another object in a more local namespace is shadowed there and not used
    (it means what the most local frame binding it says: an outer frame's ``self``, another
    object, would make ``self.layers[0]`` read as the inner ``self``'s). Two kinds of names are
    used only for what no other name reaches: one the stack binds to several objects (``self``
    of a layer called by ``self`` of its net), and one its code binds only inside a loop (``net``
    in ``for net in nets``, one of several in turn): ``nets[1]`` says which.

    Notes
    -----
    Complexity: O(values looked at), at most ``_MAX_VISITS`` (breadth first, so what the budget
    cuts is the deepest clutter), plus one parse of a frame's source file per function (cached). The first path
    found for an object is its best: seeds come in rank order and, within one namespace,
    breadth first means fewest steps.
    """
    found = _Found()
    seen: set[int] = set()
    bound: dict[str, Any] = {}  # variable name -> the object the most local namespace binds it to
    several: set[str] = set()  # names the stack binds to more than one object
    seeds: list[list[tuple[str, Any]]] = []
    for ns, _ in namespaces:
        items = [(k, v) for k, v in list(ns.items()) if isinstance(k, str) and not k.startswith("_")]
        keep = []
        for k, v in items:
            if k in bound and bound[k] is not v:
                several.add(k)
                continue
            keep.append((k, v))
        for k, v in items:
            bound.setdefault(k, v)
        seeds.append(keep)
    later: list[list[tuple[str, Any]]] = []
    for i, (_, f) in enumerate(namespaces):
        candidates = [(k, v) for k, v in seeds[i] if _category(type(v)) in (_SEARCH, _OPTIMIZER)]
        loops = _loop_bound(f) if candidates else set()
        later.append([(k, v) for k, v in candidates if k in several or k in loops])
        seeds[i] = [(k, v) for k, v in seeds[i] if k not in several and k not in loops]
    budget = _MAX_VISITS
    for roots in seeds + later:
        queue: deque[tuple[str, Any, int]] = deque((k, v, 0) for k, v in roots)
        while queue and budget > 0:
            path, v, hops = queue.popleft()
            cat = _category(type(v))
            if cat == _TENSOR:
                if v.requires_grad and v.grad_fn is None and id(v) not in found.tensors:
                    found.tensors[id(v)] = path
                continue
            if cat == _SKIP or id(v) in seen:
                continue
            seen.add(id(v))
            if cat == _OPTIMIZER:
                found.optimizers.append((path, v))
                continue
            if isinstance(v, nn.Module):
                found.modules.append((path, v))
            if hops >= _MAX_HOPS:
                continue
            for child_path, child in _children(v, path):
                budget -= 1
                if _category(type(child)) != _SKIP:
                    queue.append((child_path, child, hops + 1))
                if budget <= 0:
                    break
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


_BASE_NAMED_MODULES = nn.Module.named_modules
_BASE_NAMED_PARAMETERS = nn.Module.named_parameters
_BASE_NAMED_MEMBERS = nn.Module._named_members
_BASE_MODULES = nn.Module.modules


def _named_modules(mod: nn.Module) -> list[tuple[str, nn.Module]]:
    """``list(mod.named_modules())``, walked with an explicit stack when no module overrides it.

    torch's own is a recursive generator (a ``yield from`` chain as deep as the tree, per
    module); this visits the modules in the same pre-order with the same memo, so the list is
    the same. A tree with a module whose class overrides ``named_modules`` gets torch's.
    Complexity: O(M) for M modules.
    """
    out: list[tuple[str, nn.Module]] = []
    memo: set[nn.Module] = set()
    stack: list[tuple[str, nn.Module]] = [("", mod)]
    while stack:
        prefix, m = stack.pop()
        if type(m).named_modules is not _BASE_NAMED_MODULES:
            return list(mod.named_modules())
        if m in memo:
            continue
        memo.add(m)
        out.append((prefix, m))
        dot = prefix + "." if prefix else ""
        kids = [(dot + name, sub) for name, sub in m._modules.items() if sub is not None]
        kids.reverse()
        stack.extend(kids)
    return out


def _named_parameters(mod: nn.Module, modules: list[tuple[str, nn.Module]]) -> Iterable[tuple[str, Any]]:
    """``mod.named_parameters(remove_duplicate=True)``, from ``modules`` (its :func:`_named_modules`).

    torch's walks the tree again; with neither ``named_parameters`` nor ``_named_members``
    overridden (FSDP1 overrides it) it is each module's ``_parameters`` in that order, each
    tensor once. Complexity: O(M + P).
    """
    t = type(mod)
    if t.named_parameters is not _BASE_NAMED_PARAMETERS or t._named_members is not _BASE_NAMED_MEMBERS:
        return list(mod.named_parameters(remove_duplicate=True))
    out: list[tuple[str, Any]] = []
    memo: set[int] = set()
    for prefix, m in modules:
        dot = prefix + "." if prefix else ""
        for k, v in m._parameters.items():
            if v is None or id(v) in memo:
                continue
            memo.add(id(v))
            out.append((dot + k, v))
    return out


def _add_module(known: Known, prefix: str, mod: nn.Module) -> None:
    # Each submodule's path, the level a wrapper holds its module in left out (see _WRAPPERS).
    paths: dict[str, str] = {}
    mods: dict[str, nn.Module] = {}
    tree = _named_modules(mod)
    for sub_path, sub in tree:
        if not sub_path:
            path = prefix
        else:
            parent_path, _, attr = sub_path.rpartition(".")
            parent = mods[parent_path]
            path = paths[parent_path] if _wrapped_attr(parent) == attr else f"{paths[parent_path]}.{attr}"
        paths[sub_path], mods[sub_path] = path, sub
        known.modules.setdefault(id(sub), path)
    from .fsdp import unsharded_twins

    # unsharded_twins looks only at modules whose class has _get_fsdp_state (FSDP2's).
    if type(mod).modules is not _BASE_MODULES or any(
            hasattr(t, "_get_fsdp_state") for t in {type(sub) for _, sub in tree}):
        known.twins.update(unsharded_twins(mod))
    for pname, p in _named_parameters(mod, tree):
        p = known.twins.get(id(p), p)  # FSDP2: name the parameter the graph holds
        if id(p) in known.params:
            continue
        owner_path, _, leaf = pname.rpartition(".")
        owner = paths.get(owner_path)
        full = f"{owner}.{leaf}" if owner is not None else strip_wrapper(f"{prefix}.{pname}")
        if owner is None:
            owner = full.rsplit(".", 1)[0]
        if is_uninitialized(p):
            if full not in known.uninitialized:
                known.uninitialized.append(full)
            continue
        known.params[id(p)] = ParamInfo(full, owner, p, is_module_param=True)


def _attr_of(parent: Any, child: Any) -> str | None:
    """``.proj`` or ``.layers[2]``: where ``parent`` keeps ``child`` outside its submodules."""
    for path, v in _children(parent, ""):
        if v is child:
            return path
        if isinstance(v, (list, tuple, dict)):
            for p2, v2 in _children(v, path):
                if v2 is child:
                    return p2
    return None


def _add_registry_modules(known: Known, registry: Registry) -> None:
    """Modules the recorder saw run that no path reached, named by their caller or their class.

    Seen order puts a caller before the modules it calls, so a caller is named first.
    """
    taken: set[str] = set(known.modules.values())
    for mod, parent in registry.modules_seen():
        if id(mod) in known.modules:
            continue
        ppath = known.modules.get(id(parent)) if parent is not None else None
        if ppath is not None:
            attr = _attr_of(parent, mod)
            base = f"{ppath}{attr}" if attr else f"{ppath}.<{type(mod).__name__}>"
        else:
            base = type(mod).__name__
        path = unique_name(base, taken)
        taken.add(path)
        _add_module(known, path, mod)
        taken.update(known.modules.values())


def _gc_optimizers() -> list[torch.optim.Optimizer]:
    """Every live optimizer, found through the garbage collector in one pass over its objects.

    Notes
    -----
    Only Optimizer classes that have had an instance are looked for (torch wraps a class's
    ``step`` on its first instance and marks it ``hooked``): no class hooked, no pass. The pass
    is ``gc.get_referrers`` of those classes (an instance refers to its class), which runs in C
    without building a list of the heap: about 0.1-0.3 µs per tracked object, 30-80 ms on a
    300k-object heap on two busy cores. Matching by exact type, never ``isinstance``, reads no
    object's ``__class__`` (some proxies answer that with a warning).
    """
    classes: set[type] = set()
    todo: list[type] = [torch.optim.Optimizer]
    while todo:
        c = todo.pop()
        if c not in classes:
            classes.add(c)
            todo.extend(c.__subclasses__())
    if hasattr(torch.optim.Optimizer, "_patch_step_function"):
        classes = {c for c in classes if getattr(c.__dict__.get("step"), "hooked", False)}
    if not classes:
        return []
    return [o for o in gc.get_referrers(*classes) if type(o) in classes]


def _optimizers_may_exist() -> bool:
    """False only when no optimizer can have been built in this process.

    torch marks an Optimizer class's ``step`` ``hooked`` on its first instance (see
    :func:`_gc_optimizers`). With no class marked, and no Optimizer class from outside torch
    (one whose ``__init__`` might skip torch's, so never marks it), there is none anywhere.
    Complexity: O(Optimizer classes).
    """
    if not hasattr(torch.optim.Optimizer, "_patch_step_function"):
        return True
    seen: set[type] = set()
    todo: list[type] = [torch.optim.Optimizer]
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        if getattr(c.__dict__.get("step"), "hooked", False) or not (
                getattr(c, "__module__", "") or "").startswith("torch."):
            return True
        todo.extend(c.__subclasses__())
    return False


def name_hidden(tensors: Sequence[torch.Tensor], taken: Iterable[str] = ()) -> Known:
    """Names for parameters no variable or registry reached: through the live modules that hold them.

    The garbage collector's objects are matched by exact type against every ``nn.Module``
    class (in C, as in :func:`_gc_optimizers`); the outermost module holding one of ``tensors``
    is named by its class (``Net.fc.weight``), ``#2`` for a second of one class or a name in
    ``taken``. Run only when the walk met a parameter ``collect_known`` had not named.

    Notes
    -----
    Complexity: one pass over the collector's objects, plus O(parameters) of the modules that
    hold one of ``tensors``.
    """
    want = {id(t) for t in tensors}
    classes: set[type] = set()
    todo: list[type] = [nn.Module]
    while todo:
        c = todo.pop()
        if c not in classes:
            classes.add(c)
            todo.extend(c.__subclasses__())
    objs = gc.get_objects()
    try:
        mods = [o for o, keep in zip(objs, map(classes.__contains__, map(type, objs))) if keep]
    finally:
        del objs
    holders = [m for m in mods if any(id(p) in want for p in m.parameters())]
    known = Known()
    used = set(taken)
    for mod in [m for _, m in _outermost_first([("", m) for m in holders])]:
        if id(mod) in known.modules:
            continue
        path = unique_name(type(mod).__name__, used)
        used.add(path)
        _add_module(known, path, mod)
    return known


def collect_known(frame: types.FrameType | None, params: Any = None, *, registry: Registry | None = None,
                  optimizers_complete: bool = False) -> Known:
    """Find parameters, modules and optimizers, from ``params=`` or from wherever the script keeps them.

    Parameters
    ----------
    frame : frame or None
        The frame that calls backward (or probe()); it and its user callers are searched.
    params : dict, list of modules, or None
        ``{"name": module_or_tensor}`` or ``[module, ...]``; overrides the modules found.
    registry : Registry, optional
        The recorder, for the modules that ran and the optimizers that were built.
    optimizers_complete : bool
        The registry saw every optimizer built (the script ran under the recorder from its
        first line, as the registry's ``from_start`` also says): the garbage collector is not
        searched.

    Returns
    -------
    Known

    Notes
    -----
    Complexity: O(P + M) over the parameters and modules found, plus the bounded search (see
    :func:`_search`), plus at most one pass over the collector's objects for optimizers.
    """
    known = Known()
    namespaces = frame_namespaces(frame)
    stack_ns = _stack_namespaces(frame)
    found: _Found | None = None

    def search() -> _Found:
        nonlocal found
        if found is None:
            found = _search(stack_ns)
        return found

    if params is not None:
        _add_params(known, params, namespaces)
    else:
        for name, mod in _outermost_first(search().modules):
            _add_module(known, name, mod)
        if registry is not None:
            _add_registry_modules(known, registry)
    # Optimizers: every one found by a path, then the registry's, then (if need be) the collector's.
    # With params= given, the search is only for optimizers: none built, none to find.
    opts: list[tuple[str | None, torch.optim.Optimizer]] = (
        list(search().optimizers) if params is None or _optimizers_may_exist() else [])
    have = {id(o) for _, o in opts}
    extra: list[torch.optim.Optimizer] = list(registry.optimizers_seen()) if registry is not None else []
    if not (optimizers_complete or getattr(registry, "from_start", False)):
        held = {id(p) for _, o in opts for g in o.param_groups for p in g["params"]}
        held.update(id(p) for o in extra for g in o.param_groups for p in g["params"])
        unheld = {pid for pid, info in known.params.items() if info.tensor.requires_grad and pid not in held}
        if unheld:
            # Only an optimizer of a parameter found here: the heap may hold others' (an earlier
            # experiment's in a notebook, another test's, garbage not yet collected).
            extra.extend(o for o in _gc_optimizers()
                         if any(id(p) in unheld for g in o.param_groups for p in g["params"]))
    for o in extra:
        if id(o) not in have:
            have.add(id(o))
            opts.append((None, o))
    fallback: Known | None = None
    taken_opt: set[str] = set()
    for path, opt in opts:
        name = unique_name(path or type(opt).__name__, taken_opt)
        taken_opt.add(name)
        known.optimizers.append(name)
        known.optimizer_ids[id(opt)] = name
        for gi, group in enumerate(opt.param_groups):
            for pi, p in enumerate(group["params"]):
                if not isinstance(p, torch.Tensor) or is_uninitialized(p):
                    continue
                p = known.twins.get(id(p), p)  # FSDP2: the optimizer holds the sharded one
                info = known.params.get(id(p))
                if info is None:
                    if fallback is None:  # a parameter of no module given in params=
                        fallback = Known()
                        for mname, mod in _outermost_first(search().modules):
                            _add_module(fallback, mname, mod)
                        if registry is not None:
                            _add_registry_modules(fallback, registry)
                    fb = fallback.params.get(id(p))
                    if fb is not None:
                        info = ParamInfo(fb.name, fb.module, p, is_module_param=True)
                    else:
                        nm = search().tensors.get(id(p)) or f"{name}.param_groups[{gi}][{pi}]"
                        info = ParamInfo(nm, None, p)
                    known.params[id(p)] = info
                if name not in info.optimizers:
                    info.optimizers.append(name)
    finish_names(known)
    return known


def _add_params(known: Known, params: Any, namespaces: list[Mapping[str, Any]]) -> None:
    """The modules and tensors of an explicit ``params=``."""
    from ..errors import ProbeInputError

    if isinstance(params, nn.Module):
        params = [params]
    if isinstance(params, Mapping):
        for k, v in params.items():
            if isinstance(v, nn.Module):
                _add_module(known, str(k), v)
            elif isinstance(v, torch.Tensor):
                if not is_uninitialized(v):
                    known.params.setdefault(id(v), ParamInfo(str(k), None, v))
            else:
                raise ProbeInputError(
                    f"params={{{k!r}: ...}} holds a {type(v).__name__}; give nn.Modules or tensors."
                )
        return
    if not isinstance(params, (list, tuple)):
        raise ProbeInputError(
            f"params= is a {type(params).__name__}; give a dict {{name: module or tensor}} "
            "or a list of nn.Modules.")
    for i, m in enumerate(params):
        if isinstance(m, nn.Module):
            nm = name_of(m, namespaces) or f"{type(m).__name__.lower()}{i}"
            _add_module(known, nm, m)
        elif isinstance(m, torch.Tensor):
            nm = name_of(m, namespaces) or f"param[{i}]"
            if not is_uninitialized(m):
                known.params.setdefault(id(m), ParamInfo(nm, None, m))
        else:
            raise ProbeInputError(
                f"params[{i}] is a {type(m).__name__}; give a dict or a list of nn.Modules."
            )
