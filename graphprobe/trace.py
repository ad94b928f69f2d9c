"""The recorder: ``trace()`` notes every exit from autograd and every re-entry, as the script runs.

A walk of ``grad_fn`` can't tell a constant from a numpy-born tensor: both are ``None`` in
``next_functions``. So while a trace is active, a ``TorchFunctionMode`` watches tensor calls:

* an **exit** (``.detach()``, ``.data``, ``.numpy()``, ``.item()``, ``.tolist()``, an op under
  ``no_grad`` on tensors that require grad) tags what it returns with a :class:`Provenance`: the
  autograd node before the exit, the kind of exit and its ``file:line``;
* the tag **follows the data**: through grad-less torch ops, through numpy (the array handed back
  is a :class:`TrackedArray`, an ``ndarray`` subclass that carries the tag through ufuncs,
  ``concatenate``/``stack``/``clip``, slicing and reshape) and through Python scalars
  (:class:`TrackedFloat`, :class:`TrackedInt`, which carry it through arithmetic);
* a **re-entry** (``torch.from_numpy``, ``torch.tensor``, ``torch.as_tensor``, ``requires_grad_``,
  or a tagged grad-less tensor meeting tensors that require grad in an op) closes a
  :class:`CutRecord` from the node before the exit to the first node after the re-entry.

Module forward hooks tag each op's ``grad_fn.metadata`` with the module running it, so the graph
can be clustered by module. Everything is removed on every exit path of the ``with`` block.

Known limits (documented, see the README): arrays that leave as ``TrackedArray`` fail a strict
``type(a) is np.ndarray`` check, and ``.item()`` values are float/int subclasses; data that goes
through numpy scalars, ``arr.tolist()``, ``math`` functions or string formatting loses its tag.
"""
from __future__ import annotations

import contextlib
import itertools
import linecache
import os
import sys
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from . import walk as _walk
from .errors import GraphprobeError
from .locations import is_user_file as _is_user_file, split_location

__all__ = [
    "trace",
    "Trace",
    "CutRecord",
    "Provenance",
    "TrackedArray",
    "TrackedFloat",
    "TrackedInt",
    "active_trace",
    "user_location",
    "user_frame",
    "TraceSnapshot",
]

_ACTIVE: "Trace | None" = None
_PER_SITE = 16  # cut instances kept per (exit, re-entry) site pair: bounds a long trace
_ACC_SEQ = 2 ** 63  # AccumulateGrad nodes carry UINT64_MAX as their sequence number
_KIND_RANK = {"detach": 0, "no_grad": 1, "data": 2, "tolist": 3, "item": 3, "numpy": 4}

def user_frame(depth: int = 1) -> Any:
    """The nearest frame outside torch, numpy and graphprobe (None if there is none)."""
    f: Any = sys._getframe(depth)
    while f is not None and not _is_user_file(f.f_code.co_filename):
        f = f.f_back
    return f


def user_location(depth: int = 1) -> str | None:
    """``file:line`` of the nearest frame outside torch, numpy and graphprobe. Complexity: O(stack)."""
    f: Any = sys._getframe(depth)
    while f is not None:
        fn = f.f_code.co_filename
        if _is_user_file(fn):
            return f"{fn}:{f.f_lineno}"
        f = f.f_back
    return None


def _ignored(loc: str | None) -> bool:
    path, line = split_location(loc)
    return line is not None and "graphprobe: ignore" in linecache.getline(path, line)


_MAX_SEEN = 100_000  # modules / optimizers the registries hold (a model rebuilt every step is bounded)
_MAX_SOURCES = 16  # autograd nodes / exits one provenance remembers
_MAX_CHAIN = 12  # operations one chain keeps: the first 8, "…", the last 3


def _cap(chain: tuple[tuple[str, str | None], ...]) -> tuple[tuple[str, str | None], ...]:
    """A chain no longer than _MAX_CHAIN (a loop can add one op per step forever)."""
    if len(chain) <= _MAX_CHAIN:
        return chain
    return chain[:8] + (("…", None),) + chain[-3:]


@dataclass(frozen=True)
class Provenance:
    """Where a grad-less value left autograd, and the operations it has been through since."""

    kind: str
    location: str | None
    source_fns: tuple[Any, ...] = ()
    source_params: tuple[Any, ...] = ()  # weakrefs to leaf tensors (no_grad exits)
    chain: tuple[tuple[str, str | None], ...] = ()
    guess: bool = False
    #: when an op combined data from several distinct exits, each one's own provenance: a
    #: re-entry then closes one cut per exit, each at its own kind and line
    parts: tuple[Any, ...] = ()

    def then(self, op: str, location: str | None, kind: str | None = None) -> "Provenance":
        """This provenance after one more operation (the most specific exit kind wins)."""
        k = self.kind
        if kind is not None and _KIND_RANK.get(kind, -1) > _KIND_RANK.get(k, -1):
            k = kind
        return Provenance(k, self.location, self.source_fns, self.source_params,
                          _cap(self.chain + ((op, location),)), self.guess,
                          tuple(p.then(op, location, kind) for p in self.parts))

    @staticmethod
    def merge(provs: list["Provenance"], op: str, location: str | None,
              extra_fns: tuple[Any, ...] = (), extra_params: tuple[Any, ...] = (),
              kind: str | None = None) -> "Provenance":
        """One provenance for an op that combined several tagged inputs."""
        first = provs[0] if provs else Provenance(kind or "no_grad", location)
        # Bounded: `acc = acc + x.detach().numpy()` in a loop merges one more exit each step.
        fns = tuple(dict.fromkeys(fn for p in provs for fn in p.source_fns))[-_MAX_SOURCES:] + extra_fns
        params = (tuple(p for pr in provs for p in pr.source_params) + extra_params)[-_MAX_SOURCES:]
        k = max((p.kind for p in provs), key=lambda x: _KIND_RANK.get(x, -1)) if provs else (kind or "no_grad")
        if kind is not None and _KIND_RANK.get(kind, -1) > _KIND_RANK.get(k, -1):
            k = kind
        # One part per exit site (the latest one), at most _MAX_SOURCES of them.
        by_exit: dict[Any, Provenance] = {}
        for q in (q for p in provs for q in (p.parts or (p,))):
            by_exit.pop(q.location, None)
            by_exit[q.location] = q
        flat = list(by_exit.values())[-_MAX_SOURCES:]
        parts = tuple(q.then(op, location, kind) for q in flat) if len(flat) > 1 else ()
        return Provenance(k, first.location, fns, params, _cap(first.chain + ((op, location),)),
                          any(p.guess for p in provs), parts)


@dataclass
class CutRecord:
    """One cut: the exit, the chain, and the re-entry, with the autograd nodes on either side."""

    kind: str
    chain: list[tuple[str, str | None]]
    location: str | None
    reentry_location: str | None
    source_fns: list[Any] = field(default_factory=list)
    source_params: list[Any] = field(default_factory=list)  # weakrefs
    #: where the data came back: (first autograd node after it, weakref to a re-entered leaf);
    #: one exit can re-enter at several places (a residual connection), the first one first
    targets: list[tuple[Any, Any]] = field(default_factory=list)
    made_requires_grad: bool = False
    guess: bool = False
    ignored: bool = False
    _prov: Any = field(default=None, repr=False, compare=False)

    @property
    def target_fn(self) -> Any:
        return self.targets[0][0] if self.targets else None

    @property
    def target_leaf(self) -> Any:
        return self.targets[0][1] if self.targets else None

    @property
    def source_param_ids(self) -> list[int]:
        out = []
        for r in self.source_params:
            t = r()
            if t is not None:
                out.append(id(t))
        return out


# -- values that carry a provenance ------------------------------------------------------------

_UFUNC_SYMBOL = {"multiply": "×", "add": "+", "subtract": "−", "true_divide": "÷", "divide": "÷",
                 "power": "**", "negative": "−", "floor_divide": "//"}


def _fmt_operand(x: Any) -> str:
    if isinstance(x, (int, float, np.generic)) and not isinstance(x, bool):
        return f"{float(x):g}"
    return ""


_KEYS = itertools.count(1)
_MAX_TAGGED = 256  # live tags per trace; an older tagged value loses its tag (bounded memory)


def _tag(prov: "Provenance") -> int:
    """A key for ``prov`` in the active trace's registry (0 when no trace records).

    Tagged values carry only this integer, never the provenance itself: the provenance holds
    autograd nodes, and a float in a user's loss history must not keep a graph alive, nor stop
    pickling. The registry is emptied when the trace ends.
    """
    tr = _ACTIVE
    if tr is None:
        return 0
    key = next(_KEYS)
    reg = tr._tagged
    reg[key] = prov
    if len(reg) > _MAX_TAGGED:
        del reg[next(iter(reg))]
    return key


def _get_prov(x: Any) -> "Provenance | None":
    if not isinstance(x, (TrackedArray, TrackedFloat, TrackedInt)):
        return None
    tr = _ACTIVE
    key = getattr(x, "_gp_key", 0)
    return tr._tagged.get(key) if tr is not None and key else None


def _unwrap(x: Any) -> Any:
    if isinstance(x, TrackedArray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)) and any(isinstance(i, TrackedArray) for i in x):
        return type(x)(i.view(np.ndarray) if isinstance(i, TrackedArray) else i for i in x)
    return x


def _collect(x: Any, out: list["Provenance"], budget: int = 4096) -> None:
    """Tags found in ``x``, looking into lists and tuples (iteratively, at most ``budget`` items)."""
    stack = [x]
    while stack and budget > 0:
        v = stack.pop()
        budget -= 1
        p = _get_prov(v)
        if p is not None:
            out.append(p)
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, torch.Tensor):
            tr = _ACTIVE
            if tr is not None:
                p = tr._tensor_prov(v)
                if p is not None:
                    out.append(p)


class TrackedArray(np.ndarray):
    """An ``ndarray`` that remembers where its data left autograd. Numerics are plain numpy's."""

    _gp_key: int = 0

    def __array_finalize__(self, obj: Any) -> None:
        self._gp_key = getattr(obj, "_gp_key", 0)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Saved, pickled and torch.save'd as the plain ndarray it is.
        return self.view(np.ndarray).__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.view(np.ndarray).__reduce__()

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        provs = [p for p in (_get_prov(i) for i in inputs) if p is not None]
        args = [_unwrap(i) for i in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(_unwrap(o) for o in kwargs["out"])
        result = getattr(ufunc, method)(*args, **kwargs)
        if not provs or _ACTIVE is None:
            return result
        sym = _UFUNC_SYMBOL.get(ufunc.__name__)
        operand = next((_fmt_operand(i) for i in inputs if _get_prov(i) is None and _fmt_operand(i)), "")
        op = f"{sym} {operand}".strip() if sym else f"np.{ufunc.__name__}"
        if method != "__call__":
            op = f"np.{ufunc.__name__}.{method}"
        return _wrap_result(result, Provenance.merge(provs, op, user_location()))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        provs: list[Provenance] = []
        _collect(list(args) + list(kwargs.values()), provs)
        result = func(*(_unwrap(a) for a in args), **{k: _unwrap(v) for k, v in kwargs.items()})
        if not provs or _ACTIVE is None:
            return result
        return _wrap_result(result, Provenance.merge(provs, f"np.{func.__name__}", user_location()))


def _wrap_result(result: Any, prov: Provenance) -> Any:
    if isinstance(result, np.ndarray):
        out = result.view(TrackedArray)
        out._gp_key = _tag(prov)
        return out
    if isinstance(result, tuple):
        return tuple(_wrap_result(r, prov) for r in result)
    return result


def _scalar_op(name: str, symbol: str) -> Callable[..., Any]:
    def op(self: Any, *other: Any) -> Any:
        base = float if isinstance(self, float) else int
        res = getattr(base, name)(self, *other)
        if res is NotImplemented or _ACTIVE is None:
            return res
        prov = _get_prov(self)
        if prov is None:
            return res
        operand = _fmt_operand(other[0]) if other else ""
        return _track_scalar(res, prov.then(f"{symbol} {operand}".strip(), user_location()))

    op.__name__ = name
    return op


_SCALAR_OPS = {
    "__add__": "+", "__radd__": "+", "__sub__": "−", "__rsub__": "−", "__mul__": "×", "__rmul__": "×",
    "__truediv__": "÷", "__rtruediv__": "÷", "__floordiv__": "//", "__rfloordiv__": "//",
    "__pow__": "**", "__rpow__": "**", "__neg__": "−", "__abs__": "abs", "__mod__": "%",
}


class TrackedFloat(float):
    """A float from ``.item()`` that remembers where it left autograd (pickles as a float)."""

    _gp_key: int = 0

    def __reduce__(self) -> Any:
        return (float, (float(self),))


class TrackedInt(int):
    """An int from ``.item()`` that remembers where it left autograd (pickles as an int)."""

    _gp_key: int = 0

    def __reduce__(self) -> Any:
        return (int, (int(self),))


for _n, _s in _SCALAR_OPS.items():
    setattr(TrackedFloat, _n, _scalar_op(_n, _s))
    setattr(TrackedInt, _n, _scalar_op(_n, _s))


# Holds True once a tracked scalar was handed out: from then on ops look for them in their args.
_SEEN_SCALARS: set[bool] = set()


def _track_scalar(v: Any, prov: Provenance) -> Any:
    _SEEN_SCALARS.add(True)
    if type(v) is float or type(v) is TrackedFloat:
        out: Any = TrackedFloat(v)
    elif type(v) is int or type(v) is TrackedInt:
        out = TrackedInt(v)
    else:
        return v  # bool, complex: left as they are
    out._gp_key = _tag(prov)
    return out


def _track_list(v: Any, prov: Provenance, budget: int = 100_000) -> Any:
    """A ``tolist()`` result with tracked leaves (iterative; plain beyond ``budget`` items)."""
    if not isinstance(v, list):
        return _track_scalar(v, prov)
    root: list[Any] = list(v)
    stack = [root]
    while stack and budget > 0:
        lst = stack.pop()
        for i, x in enumerate(lst):
            budget -= 1
            if isinstance(x, list):
                lst[i] = list(x)
                stack.append(lst[i])
            else:
                lst[i] = _track_scalar(x, prov)
    return root


# -- the recorder ------------------------------------------------------------------------------

def _tensors_in(args: Iterable[Any]) -> Iterator[torch.Tensor]:
    for a in args:
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    yield b


def _first_grad_fn(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.grad_fn
    if isinstance(out, (list, tuple)):
        for o in out:
            if isinstance(o, torch.Tensor) and o.grad_fn is not None:
                return o.grad_fn
    return None


_T = torch.Tensor
_DATA_DESCR = torch._C.TensorBase.__dict__["data"]
_FACTORIES_FROM_DATA = {torch.tensor: "tensor", torch.as_tensor: "as_tensor", torch.asarray: "asarray",
                        _T.new_tensor: "new_tensor"}


class _Mode(TorchFunctionMode):
    def __init__(self, tr: "Trace") -> None:
        super().__init__()
        self.tr = tr
        self.handlers: dict[Any, Callable[..., Any]] = {
            _T.detach: self._detach, _T.detach_: self._detach, _T.numpy: self._numpy,
            _T.item: self._item, _T.tolist: self._tolist, _T.requires_grad_: self._requires_grad_,
        }
        for f in _FACTORIES_FROM_DATA:
            self.handlers[f] = self._factory

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        tr = self.tr
        if threading.get_ident() != tr._thread or tr._paused:
            return func(*args, **kwargs)
        h = self.handlers.get(func)
        if h is not None:
            return h(func, args, kwargs)
        if getattr(func, "__self__", None) is _DATA_DESCR:
            return self._detach(func, args, kwargs, kind="data")
        out = func(*args, **kwargs)
        # (isinstance, not type(): x.max(dim=0) returns a namedtuple, and its node must move the
        # sequence mark too, or the next module call would claim it)
        if isinstance(out, torch.Tensor) or (isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor)):
            tr._after_op(func, args, kwargs, out)
        return out

    # exits
    def _detach(self, func: Any, args: Any, kwargs: Any, kind: str = "detach") -> Any:
        t = args[0]
        fn = t.grad_fn
        was = t.requires_grad
        prior = self.tr._tensor_prov(t)
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            return out
        if was:
            src = (fn,) if fn is not None else ()
            params = (weakref.ref(t),) if fn is None else ()
            loc = user_location()
            self.tr._set_prov(out, Provenance(kind, loc, src, params, ((kind, loc),)))
        elif prior is not None:
            self.tr._set_prov(out, prior.then(kind, user_location(), kind))
        return out

    def _exit_prov(self, t: torch.Tensor, kind: str) -> Provenance | None:
        prior = self.tr._tensor_prov(t)
        if prior is not None:
            return prior.then(kind, user_location(), kind)
        if t.requires_grad:
            fn = t.grad_fn
            loc = user_location()
            return Provenance(kind, loc, (fn,) if fn is not None else (),
                              (weakref.ref(t),) if fn is None else (), ((kind, loc),))
        return None

    def _numpy(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        prov = self._exit_prov(args[0], "numpy")
        return _wrap_result(out, prov) if prov is not None else out

    def _item(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        prov = self._exit_prov(args[0], "item")
        if prov is not None and isinstance(out, float) and out not in (0.0, 1.0, -1.0):
            # Remembered by value too: float(v), round trips through strings or math lose the
            # tag, and a torch.tensor() of the very same value is then linked as a guess.
            recent = self.tr._recent_items
            recent[out] = prov
            if len(recent) > 64:
                del recent[next(iter(recent))]
        return _track_scalar(out, prov) if prov is not None else out

    def _tolist(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        prov = self._exit_prov(args[0], "tolist")
        return _track_list(out, prov) if prov is not None else out

    # re-entries
    def _requires_grad_(self, func: Any, args: Any, kwargs: Any) -> Any:
        t = args[0]
        want = args[1] if len(args) > 1 else kwargs.get("requires_grad", True)
        prov = self.tr._tensor_prov(t)
        out = func(*args, **kwargs)
        if want and t.grad_fn is None:
            if prov is not None:
                self.tr._close(prov, "requires_grad_", user_location(), target_leaf=t, made_requires_grad=True)
                self.tr._drop_prov(t)
            else:
                self.tr._plain_leaves[id(t)] = weakref.ref(t)
        return out

    def _factory(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        provs: list[Provenance] = []
        _collect(list(args[:1]) + [kwargs.get("data")], provs)
        if not isinstance(out, torch.Tensor):
            return out
        name = _FACTORIES_FROM_DATA.get(func, getattr(func, "__name__", "tensor"))
        loc = user_location()
        if provs:
            prov = Provenance.merge(provs, name, loc)
            if out.requires_grad and out.grad_fn is None:
                self.tr._close(prov, name, loc, target_leaf=out, made_requires_grad=True)
            elif out.grad_fn is None:
                self.tr._set_prov(out, prov)
        elif self.tr._recent_items and type(args[:1] and args[0]) is float and args[0] in self.tr._recent_items:
            # No tag, but the exact value an .item() exit produced: link it, marked as a guess.
            p = self.tr._recent_items[args[0]]
            prov = Provenance(p.kind, p.location, p.source_fns, p.source_params,
                              p.chain + (("value match", None), (name, loc)), guess=True)
            if out.requires_grad and out.grad_fn is None:
                self.tr._close(prov, name, loc, target_leaf=out, made_requires_grad=True)
            elif out.grad_fn is None:
                self.tr._set_prov(out, prov)
        elif out.requires_grad and out.grad_fn is None:
            self.tr._plain_leaves[id(out)] = weakref.ref(out)
        return out


class TraceSnapshot:
    """The records of a trace at given moments, merged (what the runner keeps per step)."""

    def __init__(self) -> None:
        self.records: dict[int, CutRecord] = {}
        self.reentry: dict[int, Any] = {}
        self.plain: dict[int, Any] = {}

    def add(self, tr: "Trace") -> None:
        """Merge what ``tr`` holds now; an earlier record of the same site pair is kept."""
        for recs in tr._records.values():
            for r in recs:
                self.records.setdefault(id(r), r)
        self.reentry.update(tr._reentry_leaves)
        self.plain.update(tr._plain_leaves)

    def cut_records(self) -> list[CutRecord]:
        return list(self.records.values())

    def reentry_leaf_ids(self) -> set[int]:
        return {i for i, r in self.reentry.items() if r() is not None}

    def plain_leaf_ids(self) -> set[int]:
        return {i for i, r in self.plain.items() if r() is not None}


class Trace(contextlib.ContextDecorator):
    """Records exits from autograd and re-entries while active; see :func:`trace`."""

    def __init__(self) -> None:
        # Per (exit, re-entry, kind) site: the latest few instances. Bounded, so a trace around a
        # long loop does not grow, yet several cuts at one site in one step (a loop over heads)
        # are all kept.
        self._records: dict[tuple[Any, ...], list[CutRecord]] = {}
        self._closed: dict[int, CutRecord] = {}  # id(provenance) -> its cut (the record pins it)
        self._recent_items: dict[float, Provenance] = {}  # last .item() values, for value matches
        self._tagged: dict[int, Provenance] = {}  # key -> provenance of tagged arrays and scalars
        self._prov: dict[int, tuple[Any, Provenance]] = {}
        self._plain_leaves: dict[int, Any] = {}
        self._reentry_leaves: dict[int, Any] = {}
        self._modules: list[tuple[Any, int]] = []  # running modules, with the sequence nr at entry
        # Every module that ran and every optimizer built or stepped while recording, by weak
        # reference: names.py names what no variable reaches (a model held by a registry).
        self._seen_modules: dict[int, tuple[Any, Any]] = {}  # id -> (ref, ref of the caller or None)
        self._seen_optimizers: dict[int, Any] = {}  # id -> ref
        self.from_start = False  # set by the runner: recording began before the script's first line
        self._seq_hi = -1  # highest autograd sequence nr seen so far on the recording thread
        self._seen = 0  # ops whose output node Python has touched (see walk.ensure_stack_for_free)
        self._stack_checked = 5_000
        self._mode: _Mode | None = None
        self._handles: list[Any] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self._thread = 0
        self._paused = 0
        self.active = False

    # -- public ---------------------------------------------------------------------------
    def cut_records(self) -> list[CutRecord]:
        """The cuts recorded so far (per exit/re-entry site pair, the latest instances)."""
        return [r for recs in self._records.values() for r in recs]

    def reentry_leaf_ids(self) -> set[int]:
        """``id()`` of live leaf tensors that were re-entered and made to require grad."""
        return {i for i, r in self._reentry_leaves.items() if r() is not None}

    def plain_leaf_ids(self) -> set[int]:
        """``id()`` of live leaf tensors made to require grad from fresh data (inputs, not cuts)."""
        return {i for i, r in self._plain_leaves.items() if r() is not None}

    def modules_seen(self) -> list[tuple[Any, Any]]:
        """``(module, the module running when it was called, or None)`` for every live module that ran."""
        out = []
        for ref, parent_ref in list(self._seen_modules.values()):
            m = ref()
            if m is not None:
                out.append((m, parent_ref() if parent_ref is not None else None))
        return out

    def optimizers_seen(self) -> list[Any]:
        """Every live optimizer built or stepped while recording, in the order first seen."""
        return [o for o in (r() for r in list(self._seen_optimizers.values())) if o is not None]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Record nothing inside this block (graphprobe's own confirmation backward)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def clear(self) -> None:
        """Forget every record (and the autograd nodes they hold)."""
        self._records.clear()
        self._closed.clear()
        self._reentry_leaves.clear()
        self._plain_leaves.clear()

    # -- state kept while recording --------------------------------------------------------
    def _tensor_prov(self, t: torch.Tensor) -> Provenance | None:
        e = self._prov.get(id(t))
        if e is None or e[0]() is not t:
            return None
        if t.requires_grad:
            # It is back in autograd through a legitimate door (a custom Function's or a
            # checkpoint's output, whose forward ran under no_grad): not a cut.
            return None
        return e[1]

    def _set_prov(self, t: torch.Tensor, prov: Provenance) -> None:
        key = id(t)
        d = self._prov

        def gone(_: Any, key: int = key, d: dict = d) -> None:
            d.pop(key, None)

        d[key] = (weakref.ref(t, gone), prov)

    def _drop_prov(self, t: torch.Tensor) -> None:
        self._prov.pop(id(t), None)

    def _close(self, prov: Provenance, op: str, loc: str | None, *, target_fn: Any = None,
               target_leaf: Any = None, made_requires_grad: bool = False) -> None:
        if prov.parts:  # data from several exits came back together: one cut for each exit
            for p in prov.parts:
                self._close(p, op, loc, target_fn=target_fn, target_leaf=target_leaf,
                            made_requires_grad=made_requires_grad)
            return
        leaf_ref = weakref.ref(target_leaf) if target_leaf is not None else None
        if target_leaf is not None:
            self._reentry_leaves[id(target_leaf)] = leaf_ref
        rec = self._closed.get(id(prov))
        if rec is not None and rec._prov is prov:
            # The same exit coming back again (tmp used twice): one cut, one more target.
            if len(rec.targets) < _PER_SITE:
                rec.targets.append((target_fn, leaf_ref))
            rec.made_requires_grad |= made_requires_grad
            return
        chain = list(prov.chain)
        if not op.startswith("op:") and op != "requires_grad_" and (not chain or chain[-1][0] != op):
            chain.append((op, loc))
        rec = CutRecord(
            kind=prov.kind, chain=chain, location=prov.location, reentry_location=loc,
            source_fns=list(prov.source_fns), source_params=list(prov.source_params),
            targets=[(target_fn, leaf_ref)], made_requires_grad=made_requires_grad, guess=prov.guess,
            ignored=_ignored(prov.location) or _ignored(loc),
        )
        rec._prov = prov
        self._closed[id(prov)] = rec
        recs = self._records.setdefault((prov.location, loc, prov.kind), [])
        recs.append(rec)
        if len(recs) > _PER_SITE:
            old = recs.pop(0)
            self._closed.pop(id(old._prov), None)

    def _after_op(self, func: Any, args: Any, kwargs: Any, out: Any) -> None:
        """Tag module ownership; follow tagged data; note no_grad exits and re-entries."""
        if isinstance(out, torch.Tensor) and out.grad_fn is None and out.requires_grad \
                and not isinstance(out, torch.nn.Parameter) and not any(out is a for a in args):
            # torch.randn(..., requires_grad=True): an input leaf made on purpose, not a cut.
            self._plain_leaves[id(out)] = weakref.ref(out)
            return
        fns = [o.grad_fn for o in ((out,) if isinstance(out, torch.Tensor) else out)
               if isinstance(o, torch.Tensor) and o.grad_fn is not None]
        if fns:
            # Python now holds these nodes' wrappers: make sure torch can free long chains of them.
            self._seen += 1
            if self._seen >= self._stack_checked * 2:
                self._stack_checked = self._seen
                _walk.ensure_stack_for_free(self._seen * 4)
            hi = max(fn._sequence_nr() for fn in fns)
            if self._seq_hi < hi < _ACC_SEQ:
                self._seq_hi = hi
            if self._modules:
                self._tag_new_nodes(fns)
        provs: list[Provenance] = []
        if self._prov or _SEEN_SCALARS:
            _collect(list(args) + list(kwargs.values()), provs, budget=64)
        grad_on = torch.is_grad_enabled()
        if not provs and grad_on:
            return
        outs = [o for o in ([out] if isinstance(out, torch.Tensor) else out) if isinstance(o, torch.Tensor)]
        ins = list(_tensors_in(list(args) + list(kwargs.values())))
        name = getattr(func, "__name__", "op")
        if not grad_on:
            req = [t for t in ins if t.requires_grad]
            if not req and not provs:
                return
            new_outs = [o for o in outs if not o.requires_grad and all(o is not i for i in ins)]
            if not new_outs:
                return
            loc = user_location()
            src_fns = tuple(t.grad_fn for t in req if t.grad_fn is not None)
            params = tuple(weakref.ref(t) for t in req if t.grad_fn is None)
            prov = Provenance.merge(provs, name, loc, src_fns, params, kind="no_grad") if provs else \
                Provenance("no_grad", loc, src_fns, params, (("no_grad: " + name, loc),))
            for o in new_outs:
                self._set_prov(o, prov)
            return
        fn = _first_grad_fn(out)
        loc = user_location()
        if fn is not None:
            prov = Provenance.merge(provs, name, loc) if len(provs) > 1 else provs[0]
            self._close(prov, "op:" + name, loc, target_fn=fn)
            return
        prov = Provenance.merge(provs, name, loc)
        for o in outs:
            self._set_prov(o, prov)

    def _tag_new_nodes(self, fns: list[Any]) -> None:
        """Tag the nodes this call made with the innermost running module.

        A composite call (``F.multi_head_attention_forward``) shows us only its output, so walk
        back from it over the nodes created since the module was entered: autograd numbers nodes
        in creation order (``_sequence_nr``, per thread), and nodes already tagged by an inner
        module stop the walk. Cost: O(nodes the call made).
        """
        module, entry = self._modules[-1]
        _walk.TAGGED[0] = True
        stack = list(fns)
        while stack:
            fn = stack.pop()
            md = fn.metadata
            if "graphprobe_module" in md:
                continue
            md["graphprobe_module"] = module
            for nxt, _ in fn.next_functions:
                if nxt is not None:
                    seq = nxt._sequence_nr()
                    if entry < seq < _ACC_SEQ:
                        stack.append(nxt)

    # -- install / uninstall ---------------------------------------------------------------
    def __enter__(self) -> "Trace":
        global _ACTIVE
        if _ACTIVE is not None:
            if _ACTIVE._thread != threading.get_ident():
                raise GraphprobeError(
                    "graphprobe.trace() is already recording in another thread: graphprobe records "
                    "one thread at a time. Trace the thread that runs the training step."
                )
            raise GraphprobeError(
                "graphprobe.trace() is already active: nested traces are not supported. "
                "Use the outer trace; probe() picks it up."
            )
        self._thread = threading.get_ident()
        self._install()
        _ACTIVE = self
        self.active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        global _ACTIVE
        try:
            self._uninstall()
        finally:
            _ACTIVE = None
            self.active = False
            self._prov.clear()
            self._recent_items.clear()
            self._tagged.clear()
            _SEEN_SCALARS.clear()

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self._patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    def _install(self) -> None:
        try:
            from_numpy = torch.from_numpy
            tr = self

            def from_numpy_recorded(a: Any) -> torch.Tensor:
                out = from_numpy(a.view(np.ndarray) if isinstance(a, TrackedArray) else a)
                prov = _get_prov(a)
                if prov is not None and threading.get_ident() == tr._thread:
                    tr._set_prov(out, prov.then("from_numpy", user_location()))
                return out

            self._patch(torch, "from_numpy", from_numpy_recorded)
            for name in ("asarray", "array", "ascontiguousarray"):
                self._patch(np, name, _np_keep_tag(getattr(np, name), name))
            mm = torch.nn.modules.module
            self._handles.append(mm.register_module_forward_pre_hook(self._pre_hook))
            self._handles.append(mm.register_module_forward_hook(self._post_hook, always_call=True))
            from torch.optim import optimizer as optim_mod

            opt_init = torch.optim.Optimizer.__init__

            def optimizer_init_recorded(opt: Any, *args: Any, **kwargs: Any) -> None:
                opt_init(opt, *args, **kwargs)
                tr._note_optimizer(opt)

            self._patch(torch.optim.Optimizer, "__init__", optimizer_init_recorded)
            self._handles.append(optim_mod.register_optimizer_step_pre_hook(self._opt_pre))
            self._handles.append(optim_mod.register_optimizer_step_post_hook(self._opt_post))
            self._mode = _Mode(self)
            self._mode.__enter__()
        except BaseException:
            self._uninstall()
            raise

    def _uninstall(self) -> None:
        mode, self._mode = self._mode, None
        if mode is not None:
            mode.__exit__(None, None, None)
        while self._handles:
            self._handles.pop().remove()
        while self._patches:
            owner, name, orig = self._patches.pop()
            setattr(owner, name, orig)
        self._modules.clear()
        self._paused = 0

    def _pre_hook(self, module: Any, args: Any) -> None:
        seen = self._seen_modules.get(id(module))
        if (seen is None or seen[0]() is not module) and len(self._seen_modules) < _MAX_SEEN:
            self._note_module(module)
        if threading.get_ident() == self._thread:
            self._modules.append((module, self._seq_hi))

    def _note_module(self, module: Any) -> None:
        # The caller is the module running on this thread now: it names a module built inside
        # its forward. Modules that can't be weakly referenced are left out.
        parent = self._modules[-1][0] if self._modules and threading.get_ident() == self._thread else None
        try:
            self._seen_modules[id(module)] = (weakref.ref(module),
                                              weakref.ref(parent) if parent is not None else None)
        except TypeError:
            pass

    def _note_optimizer(self, opt: Any) -> None:
        seen = self._seen_optimizers.get(id(opt))
        if (seen is None or seen() is not opt) and len(self._seen_optimizers) < _MAX_SEEN:
            try:
                self._seen_optimizers[id(opt)] = weakref.ref(opt)
            except TypeError:
                pass

    def _post_hook(self, module: Any, args: Any, output: Any) -> None:
        if threading.get_ident() != self._thread:
            return
        mods = self._modules
        while mods:
            if mods.pop()[0] is module:
                break

    def _opt_pre(self, opt: Any, args: Any, kwargs: Any) -> tuple[Any, Any] | None:
        self._note_optimizer(opt)
        if threading.get_ident() != self._thread:
            return None
        self._paused += 1
        # A closure (LBFGS, or any step(closure)) runs the user's forward and backward inside
        # step(): record it like any forward, not as the optimizer's own update. The hook hands
        # step() the closure wrapped; the user's closure object itself is untouched.
        if "closure" in kwargs:
            closure = kwargs["closure"]
            if callable(closure):
                return args, {**kwargs, "closure": self._recorded_closure(closure)}
        elif len(args) > 1 and callable(args[1]):
            return (args[0], self._recorded_closure(args[1]), *args[2:]), kwargs
        return None

    def _recorded_closure(self, closure: Callable[..., Any]) -> Callable[..., Any]:
        tr = self

        def closure_recorded(*a: Any, **k: Any) -> Any:
            saved, tr._paused = tr._paused, 0
            try:
                return closure(*a, **k)
            finally:
                if tr.active:
                    tr._paused = saved

        return closure_recorded

    def _opt_post(self, opt: Any, args: Any, kwargs: Any) -> None:
        if threading.get_ident() == self._thread and self._paused:
            self._paused -= 1


def _np_keep_tag(orig: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrap ``np.asarray``-like functions, which return a plain ndarray, so the tag survives."""

    def keep(*args: Any, **kwargs: Any) -> Any:
        if args:
            a = args[0]
            out = orig(_unwrap(a), *args[1:], **kwargs)
        else:  # np.array(object=x) / np.asarray(a=x)
            name_ = "object" if "object" in kwargs else "a"
            a = kwargs.get(name_)
            out = orig(**{**kwargs, name_: _unwrap(a)})
        tr = _ACTIVE
        if tr is None or threading.get_ident() != tr._thread:
            return out
        provs: list[Provenance] = []
        if isinstance(a, (TrackedArray, list, tuple, TrackedFloat, TrackedInt)):
            _collect(a, provs)
        elif isinstance(a, torch.Tensor):
            p = tr._tensor_prov(a)
            if p is None and a.requires_grad:  # np.asarray(t) on a tensor that requires grad
                fn = a.grad_fn
                p = Provenance("numpy", user_location(), (fn,) if fn is not None else (),
                               (weakref.ref(a),) if fn is None else ())
            if p is not None:
                provs.append(p)
            if provs:
                return _wrap_result(out, Provenance.merge(provs, f"np.{name}", user_location(), kind="numpy"))
        if provs:
            return _wrap_result(out, Provenance.merge(provs, f"np.{name}", user_location()))
        return out

    keep.__name__ = name
    keep.__doc__ = orig.__doc__
    keep.__wrapped__ = orig  # type: ignore[attr-defined]
    return keep


def trace() -> Trace:
    """Record exits from autograd and re-entries while active. A context manager and a decorator.

    Examples
    --------
    >>> import graphprobe, torch
    >>> with graphprobe.trace() as t:
    ...     a = torch.ones(2, requires_grad=True)
    ...     b = torch.from_numpy((a * 2).detach().numpy() * 0.5)
    ...     loss = (b * a).sum()
    >>> [r.kind for r in t.cut_records()]
    ['numpy']
    """
    return Trace()


def active_trace() -> Trace | None:
    """The trace now recording in this thread, if any."""
    tr = _ACTIVE
    return tr if tr is not None and tr._thread == threading.get_ident() else None
