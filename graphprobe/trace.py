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

The tag also follows data into what it is *written* into: a tensor written by ``buf[idx] = x``,
``copy_``, ``index_put_``, ``scatter_``/``scatter_add_``, ``index_add_``, ``masked_scatter_``, an
``out=`` argument or an in-place op under ``no_grad``; a numpy buffer that user code allocated
(handed back *watched*, see :class:`TrackedArray`) and filled by index, ``np.copyto``, ``np.put``
or a ufunc's ``out=``. A tag lives as long as a value holding it (memory is bounded per exit
site by letting old keys drop their autograd nodes, never their tag).

Known limits (documented, see the README): arrays that leave as ``TrackedArray`` fail a strict
``type(a) is np.ndarray`` check, and ``.item()`` values are float/int subclasses; data that goes
through numpy scalars, ``float()``, ``math`` functions or string formatting loses its tag (an
unchanged computed value is then linked by value, as a guess).
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
from .errors import GraphprobeError, _GraphprobeBug
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
    "release_modes",
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


def _light(p: Provenance) -> Provenance:
    """``p`` without its autograd nodes and leaves: the kind, line and chain stay."""
    return Provenance(p.kind, p.location, (), (), p.chain, p.guess, tuple(_light(q) for q in p.parts))


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


def _tag(prov: "Provenance") -> int:
    """A key for ``prov`` in the active trace's registry (0 when no trace records).

    Tagged values carry only this integer, never the provenance itself: the provenance holds
    autograd nodes, and a float in a user's loss history must not keep a graph alive, nor stop
    pickling. A key lives as long as a value holding it does (each holder counts itself in and
    out, see :func:`_assign`), so a live tag is never dropped; memory is bounded per exit site
    instead: past the newest ``_PER_SITE`` keys of one site, a key's provenance lets go of its
    autograd nodes (see :meth:`Trace._register`). The registry is emptied when the trace ends.
    """
    tr = _ACTIVE
    return tr._register(prov) if tr is not None else 0


def _assign(obj: Any, key: int) -> None:
    """Give ``obj`` (a tracked array or scalar) the tag ``key``, counting holders in and out."""
    old = obj._gp_key
    obj._gp_key = key
    tr = _ACTIVE
    if tr is not None and key != old:
        if key:
            e = tr._tagged.get(key)
            if e is not None:
                e[1] += 1
        if old:
            tr._release(old)


def _release_key(key: int) -> None:
    """One holder of ``key`` is gone (``__del__`` of a tracked value)."""
    tr = _ACTIVE
    if tr is not None and key:
        tr._release(key)


def _get_prov(x: Any) -> "Provenance | None":
    if not isinstance(x, (TrackedArray, TrackedFloat, TrackedInt)):
        return None
    tr = _ACTIVE
    key = x._gp_key
    if tr is None or not key:
        return None
    e = tr._tagged.get(key)
    return e[0] if e is not None else None


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


_UNTAGGABLE = frozenset({int, float, bool, complex, type(None), slice, str, bytes})
#: numpy functions that write into their first argument (``dst``/``a``/``arr``) from the others
_NP_WRITERS = {"copyto": "np.copyto", "put": "np.put", "place": "np.place", "putmask": "np.putmask",
               "put_along_axis": "np.put_along_axis", "fill_diagonal": "np.fill_diagonal"}


class TrackedArray(np.ndarray):
    """An ``ndarray`` that remembers where its data left autograd. Numerics are plain numpy's.

    With key 0 it is a *watched* buffer: an array that user code allocated (``np.zeros``,
    ``np.empty``... while a trace records) and that has no tag yet. A write of tagged data into
    it (``out[:, 0] = x``, ``np.copyto``, ``out=``) tags it; numpy itself calls nothing on the
    written value that Python could see, so the target has to be the one that notices.
    """

    _gp_key: int = 0

    def __array_finalize__(self, obj: Any) -> None:
        k = getattr(obj, "_gp_key", 0)
        if k:
            _assign(self, k)

    def __del__(self) -> None:
        try:
            if self._gp_key:
                _release_key(self._gp_key)
        except Exception:  # interpreter shutdown: the module may be half gone
            pass

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Saved, pickled and torch.save'd as the plain ndarray it is.
        return self.view(np.ndarray).__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.view(np.ndarray).__reduce__()

    def tolist(self) -> Any:
        out = np.ndarray.tolist(self)
        prov = _get_prov(self)
        return _track_list(out, prov.then("tolist", user_location())) if prov is not None else out

    def item(self, *args: Any) -> Any:
        out = np.ndarray.item(self, *args)
        prov = _get_prov(self)
        return _track_scalar(out, prov.then("item", user_location())) if prov is not None else out

    def __setitem__(self, idx: Any, value: Any) -> None:
        np.ndarray.__setitem__(self, idx, value)
        if _ACTIVE is not None and type(value) not in _UNTAGGABLE:
            provs: list[Provenance] = []
            _collect(value, provs, budget=64)
            if provs:
                _np_written(self, provs, "[…] =", user_location())

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        provs = [p for p in (_get_prov(i) for i in inputs) if p is not None]
        args = [_unwrap(i) for i in inputs]
        outs = kwargs.get("out")
        if outs is not None:
            kwargs["out"] = tuple(_unwrap(o) for o in outs)
        result = getattr(ufunc, method)(*args, **kwargs)
        if outs is not None and result is not None:
            # numpy hands back the out= arrays themselves (`np.add(a, b, out=c) is c`)
            rs = result if isinstance(result, tuple) else (result,)
            back = tuple(o if o is not None else r for o, r in zip(outs, rs))
            result = back[0] if len(back) == 1 else back
        if not provs or _ACTIVE is None:
            return result
        sym = _UFUNC_SYMBOL.get(ufunc.__name__)
        operand = next((_fmt_operand(i) for i in inputs if _get_prov(i) is None and _fmt_operand(i)), "")
        op = f"{sym} {operand}".strip() if sym else f"np.{ufunc.__name__}"
        if method != "__call__":
            op = f"np.{ufunc.__name__}.{method}"
        loc = user_location()
        prov = Provenance.merge(provs, op, loc)
        if outs is not None and any(o is not None for o in outs):
            # out= (and `a += x`): the data lands in the given arrays, which numpy returns.
            for o in outs:
                if isinstance(o, np.ndarray):
                    _np_written(o, [prov], op, loc)
            if all(o is not None for o in outs):
                return result
        return _wrap_result(result, prov)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        provs: list[Provenance] = []
        _collect(list(args) + list(kwargs.values()), provs)
        result = func(*(_unwrap(a) for a in args), **{k: _unwrap(v) for k, v in kwargs.items()})
        if not provs or _ACTIVE is None:
            return result
        name = func.__name__
        loc = user_location()
        if name in _NP_WRITERS:
            # The data lands in the first argument; what the function returns is None.
            dst = args[0] if args else next(iter(kwargs.values()), None)
            src: list[Provenance] = []
            _collect(list(args[1:]) + [v for k, v in kwargs.items() if v is not dst], src)
            if src and isinstance(dst, np.ndarray):
                _np_written(dst, src, _NP_WRITERS[name], loc)
            return result
        if isinstance(result, np.ndarray) and "out" in kwargs and isinstance(kwargs["out"], np.ndarray):
            _np_written(kwargs["out"], provs, f"np.{name}", loc)
            return kwargs["out"]
        return _wrap_result(result, Provenance.merge(provs, f"np.{name}", loc))


def _np_written(dst: np.ndarray, provs: list[Provenance], op: str, loc: str | None) -> None:
    """Tagged data was written into ``dst``: it (and the watched arrays it views) carry the tag.

    A write adds to what the array held: a buffer written from two exits carries both. A plain
    ``ndarray`` can't hold an attribute, so the trace keeps its tag by ``id`` (with a weakref)
    for the doors back into torch to find.
    """
    tr = _ACTIVE
    if tr is None or threading.get_ident() != tr._thread:
        return
    a: Any = dst
    for _ in range(8):  # the array, then the arrays it is a view of
        if isinstance(a, TrackedArray):
            mine = _get_prov(a)
            _assign(a, _tag(Provenance.merge(([mine] if mine is not None else []) + provs, op, loc)))
        elif isinstance(a, np.ndarray):
            tr._note_plain_write(a, provs, op, loc)
        a = getattr(a, "base", None)
        if not isinstance(a, np.ndarray):
            break


def _wrap_result(result: Any, prov: Provenance) -> Any:
    if isinstance(result, np.ndarray):
        out = result.view(TrackedArray)
        _assign(out, _tag(prov))
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
    "__rmod__": "%", "__pos__": "+", "__round__": "round", "__trunc__": "trunc",
    "__floor__": "floor", "__ceil__": "ceil",
}


class TrackedFloat(float):
    """A float from ``.item()`` that remembers where it left autograd (pickles as a float)."""

    _gp_key: int = 0

    def __reduce__(self) -> Any:
        return (float, (float(self),))

    def __del__(self) -> None:
        try:
            if self._gp_key:
                _release_key(self._gp_key)
        except Exception:  # interpreter shutdown
            pass


class TrackedInt(int):
    """An int from ``.item()`` that remembers where it left autograd (pickles as an int)."""

    _gp_key: int = 0

    def __reduce__(self) -> Any:
        return (int, (int(self),))

    __del__ = TrackedFloat.__del__


for _n, _s in _SCALAR_OPS.items():
    setattr(TrackedFloat, _n, _scalar_op(_n, _s))
    setattr(TrackedInt, _n, _scalar_op(_n, _s))


# Holds True once a tracked scalar was handed out: from then on ops look for them in their args.
_SEEN_SCALARS: set[bool] = set()


def _track_scalar(v: Any, prov: Provenance, key: int = 0) -> Any:
    """``v`` as a tracked float/int with ``prov``'s tag (or the tag ``key``, shared)."""
    _SEEN_SCALARS.add(True)
    if type(v) is float or type(v) is TrackedFloat:
        out: Any = TrackedFloat(v)
    elif type(v) is int or type(v) is TrackedInt:
        out = TrackedInt(v)
    else:
        return v  # bool, complex: left as they are
    _assign(out, key or _tag(prov))
    return out


def _track_list(v: Any, prov: Provenance, budget: int = 100_000) -> Any:
    """A ``tolist()`` result with tracked leaves (iterative; plain beyond ``budget`` items).

    Every leaf shares one tag: a 1000-element list is one exit, not a thousand.
    """
    if not isinstance(v, list):
        return _track_scalar(v, prov)
    key = _tag(prov)
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
                lst[i] = _track_scalar(x, prov, key)
    tr = _ACTIVE
    e = tr._tagged.get(key) if tr is not None else None
    if tr is not None and e is not None and e[1] <= 0:  # no leaf took it (empty, or bools only)
        del tr._tagged[key]
    return root


def _computed_float(v: Any) -> bool:
    """A float that looks computed (not 0.5, 2.0 or 1e-3): a value match on it is evidence."""
    return type(v) is float and v == v and abs(v) != float("inf") and v != round(v, 4)


# -- the recorder ------------------------------------------------------------------------------

def _tensors_in(args: Iterable[Any]) -> Iterator[torch.Tensor]:
    for a in args:
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    yield b


def _tensors_deep(x: Any, budget: int = 4096) -> Iterator[torch.Tensor]:
    """Tensors in ``x`` and in lists and tuples inside it (iteratively, at most ``budget`` items)."""
    stack = [x]
    while stack and budget > 0:
        v = stack.pop()
        budget -= 1
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)):
            stack.extend(v)


def _gfn(t: torch.Tensor) -> Any:
    """``t.grad_fn``, or None where reading it raises.

    A view made under ``no_grad`` of a tensor that requires grad, then written in place
    (``nn.init.orthogonal_``, ``emb.weight[0].fill_(0)`` under ``no_grad``), raises on any read
    of ``grad_fn``; plain torch never reads it there, so neither may the recorder.
    """
    try:
        return t.grad_fn
    except RuntimeError:
        return None


def _sources(ts: list[torch.Tensor]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The autograd nodes and leaves that tensors requiring grad stand for, for an exit's record.

    A view made under ``no_grad`` (``d[:, :2]`` inside the block) has no node of its own: it
    stands for its base's.
    """
    fns: list[Any] = []
    params: list[Any] = []
    for t in ts:
        fn = _gfn(t)
        if fn is None and t._is_view() and t._base is not None:
            t = t._base
            fn = _gfn(t)
        if fn is not None:
            fns.append(fn)
        else:
            params.append(weakref.ref(t))
    return tuple(dict.fromkeys(fns))[:_MAX_SOURCES], tuple(params)[:_MAX_SOURCES]


def _recorder_bug(e: BaseException, where: str) -> BaseException:
    """The recorder's own bookkeeping failed after the script's op ran: graphprobe's bug.

    Under ``render``/``check`` it is ``errors._GraphprobeBug``, a BaseException that the
    script's ``except Exception`` can't take for its own and the CLI reports as graphprobe's
    crash (exit 70); in-process it stops the program the same way, loudly.
    """
    return _GraphprobeBug(f"graphprobe's recorder failed in {where}: {type(e).__name__}: {e}")


def _no_grad_prov(provs: list[Provenance], req: list[torch.Tensor], exit_op: str, op: str,
                  loc: str | None) -> Provenance:
    """What an op (or a write) under ``no_grad`` hands on: the tags it read, each its own part
    at its own kind and line, and, where it read tensors that require grad, a ``no_grad`` exit
    here (``buf.copy_(d)`` under ``no_grad``). A tagged buffer scaled in place under no_grad
    (``grid.div_(count)``) keeps its exit's kind."""
    allp = list(provs)
    if req:
        fns, params = _sources(req)
        allp.append(Provenance("no_grad", loc, fns, params, ((exit_op, loc),)))
    if len(allp) == 1:
        return allp[0] if req else allp[0].then(op, loc)
    return Provenance.merge(allp, op, loc)


def _first_grad_fn(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return _gfn(out)
    if isinstance(out, (list, tuple)):
        for o in out:
            if isinstance(o, torch.Tensor):
                fn = _gfn(o)
                if fn is not None:
                    return fn
    return None


_T = torch.Tensor


class _NoCompiler:
    _is_compiling_flag = False


import torch.compiler as _torch_compiler  # noqa: E402

# torch.compiler._is_compiling_flag: True for a whole torch.compile session (older torch: absent)
_COMPILER: Any = _torch_compiler if hasattr(_torch_compiler, "_is_compiling_flag") else _NoCompiler
_DATA_DESCR = torch._C.TensorBase.__dict__["data"]
_PyFunction = type(_first_grad_fn)
_GRAD_DESCR = torch._C.TensorBase.__dict__["grad"]
_MAX_STEPS = 64  # optimizer steps remembered (the latest ones)
_FACTORIES_FROM_DATA = {torch.tensor: "tensor", torch.as_tensor: "as_tensor", torch.asarray: "asarray",
                        _T.new_tensor: "new_tensor"}


class _Mode(TorchFunctionMode):
    def __init__(self, tr: "Trace") -> None:
        super().__init__()
        self.tr = tr
        self.handlers: dict[Any, Callable[..., Any]] = {
            _T.detach: self._detach, _T.detach_: self._detach, _T.numpy: self._numpy,
            _T.item: self._item, _T.tolist: self._tolist, _T.requires_grad_: self._requires_grad_,
            torch.autograd.grad: self._grad_call, torch.autograd.backward: self._grad_call,
            _T.backward: self._grad_call,
        }
        for f in _FACTORIES_FROM_DATA:
            self.handlers[f] = self._factory
        self.handlers[_T.__setitem__] = self._setitem
        self.off = False  # set when the trace has left: a mode left behind only forwards

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if _COMPILER._is_compiling_flag:
            # torch.compile is tracing (dynamo, then aot_autograd on fake tensors): nothing
            # here is the script's data, and dynamo, tracing this method too, folds it to a call.
            return func(*args, **kwargs)
        tr = self.tr
        if threading.get_ident() != tr._thread or tr._paused or self.off:
            return func(*args, **kwargs)
        h = self.handlers.get(func)
        if h is None and type(func) is _PyFunction and hasattr(func, "__wrapped__"):
            h = self.handlers.get(func.__wrapped__)  # the runner's backward/grad wrappers
        if h is not None:
            return h(func, args, kwargs)
        owner = getattr(func, "__self__", None)
        if owner is _DATA_DESCR:
            return self._detach(func, args, kwargs, kind="data")
        if owner is _GRAD_DESCR and args and isinstance(args[0], torch.Tensor):
            # The script reads a leaf's .grad (a gradient relay): that leaf's gradient is consumed.
            self.tr._note_consumed([args[0]])
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        # (isinstance, not type(): x.max(dim=0) returns a namedtuple, and its node must move the
        # sequence mark too, or the next module call would claim it)
        if isinstance(out, torch.Tensor) or (isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor)):
            try:
                tr._after_op(func, args, kwargs, out)
            except Exception as e:  # graphprobe's bookkeeping, not the script's op
                raise _recorder_bug(e, "_after_op") from e
        return out

    # exits
    def _detach(self, func: Any, args: Any, kwargs: Any, kind: str = "detach") -> Any:
        t = args[0]
        was = t.requires_grad
        src, params = _sources([t]) if was else ((), ())  # before: detach_() changes t
        prior = self.tr._tensor_prov(t)
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            return out
        if was:
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
            loc = user_location()
            src, params = _sources([t])
            return Provenance(kind, loc, src, params, ((kind, loc),))
        return None

    def _numpy(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        prov = self._exit_prov(args[0], "numpy")
        return _wrap_result(out, prov) if prov is not None else out

    def _item(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        prov = self._exit_prov(args[0], "item")
        if prov is not None and _computed_float(out):
            # Remembered by value too: float(v), round trips through strings or math lose the
            # tag, and a torch.tensor() of the very same value is then linked as a guess.
            self.tr._remember_value(out, prov)
        return _track_scalar(out, prov) if prov is not None else out

    def _tolist(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        prov = self._exit_prov(args[0], "tolist")
        if prov is None:
            return out
        # A few of its values by value too (float(v) in a comprehension drops the tag).
        first = out
        while isinstance(first, list) and first:
            first = first[0]
        if _computed_float(first):
            self.tr._remember_value(first, prov)
        return _track_list(out, prov)

    def _grad_call(self, func: Any, args: Any, kwargs: Any) -> Any:
        """autograd.grad / backward with ``inputs=``: the gradients of those leaves are used."""
        if func is torch.autograd.grad:
            inputs = args[1] if len(args) > 1 else kwargs.get("inputs")
        else:
            inputs = kwargs.get("inputs")
        if inputs is not None:
            self.tr._note_consumed([inputs] if isinstance(inputs, torch.Tensor) else list(inputs))
        return func(*args, **kwargs)

    # re-entries
    def _requires_grad_(self, func: Any, args: Any, kwargs: Any) -> Any:
        t = args[0]
        want = args[1] if len(args) > 1 else kwargs.get("requires_grad", True)
        prov = self.tr._tensor_prov(t)
        out = func(*args, **kwargs)
        if want and _gfn(t) is None:
            if prov is not None:
                self.tr._close(prov, "requires_grad_", user_location(), target_leaf=t, made_requires_grad=True)
                self.tr._drop_prov(t)
            else:
                self.tr._plain_leaves[id(t)] = weakref.ref(t)
        return out

    def _factory(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            return out
        # x.new_tensor(data) reads data, not x
        data = (args[1] if len(args) > 1 else kwargs.get("data")) if func is _T.new_tensor else \
            (args[0] if args else kwargs.get("data"))
        try:
            self.tr._from_data(out, data, _FACTORIES_FROM_DATA.get(func, getattr(func, "__name__", "tensor")))
        except Exception as e:
            raise _recorder_bug(e, "_from_data") from e
        return out

    # writes
    def _setitem(self, func: Any, args: Any, kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        if len(args) >= 3 and isinstance(args[0], torch.Tensor):
            try:
                self.tr._after_write(args[0], args[2], "[…] =")
            except Exception as e:
                raise _recorder_bug(e, "_after_write") from e
        return out


class TraceSnapshot:
    """The records of a trace at given moments, merged (what the runner keeps per step)."""

    def __init__(self) -> None:
        self.records: dict[int, CutRecord] = {}
        self.reentry: dict[int, Any] = {}
        self.plain: dict[int, Any] = {}
        self.consumed: dict[int, Any] = {}
        self.steps: list[tuple[int, Any]] = []

    def add(self, tr: "Trace") -> None:
        """Merge what ``tr`` holds now; an earlier record of the same site pair is kept."""
        for recs in tr._records.values():
            for r in recs:
                self.records.setdefault(id(r), r)
        self.reentry.update(tr._reentry_leaves)
        self.plain.update(tr._plain_leaves)
        # The live containers, not copies: a gradient is read and an optimizer steps after the
        # step's last backward, and the report is built only when the next step begins.
        self.consumed = tr._consumed
        self.steps = tr._steps

    def cut_records(self) -> list[CutRecord]:
        return list(self.records.values())

    def consumed_leaf_ids(self) -> set[int]:
        return {i for i, r in self.consumed.items() if r() is not None}

    def optimizer_steps(self) -> list[tuple[int, Any]]:
        return [(s, r()) for s, r in self.steps if r() is not None]

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
        # Exit values remembered by value (per exit site, the latest few): float(v), a round
        # trip through a string or an untracked library lose the tag, and a re-entry of the very
        # same computed value is then linked, marked as a guess.
        self._recent_items: dict[float, Provenance] = {}
        self._recent_by_site: dict[Any, list[float]] = {}
        # key -> [provenance, live holders] of tagged arrays and scalars; a key goes when its
        # last holder does (see _assign), never while one lives.
        self._tagged: dict[int, list[Any]] = {}
        self._heavy: dict[Any, list[int]] = {}  # exit site -> its newest keys that hold nodes
        # plain ndarrays written from tagged data (they can't hold an attribute): id -> (ref, prov)
        self._np_plain: dict[int, tuple[Any, Provenance]] = {}
        self._prov: dict[int, tuple[Any, Provenance]] = {}
        self._plain_leaves: dict[int, Any] = {}
        self._reentry_leaves: dict[int, Any] = {}
        #: leaves whose gradient the script uses (an inputs= of autograd.grad, a .grad read)
        self._consumed: dict[int, Any] = {}
        #: optimizer steps, oldest first: (highest autograd sequence nr seen before it, weakref)
        self._steps: list[tuple[int, Any]] = []
        # running modules, with the sequence nr at entry and the (file, line) that called them
        self._modules: list[tuple[Any, int, Any]] = []
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
        self._patches: list[tuple[Any, str, Any, Any, bool]] = []  # owner, name, old, new, own
        self._thread = 0
        self._paused = 0
        self._new_done = False
        # `with torch.no_grad():` blocks entered while recording: (the user frame that entered
        # it, or None when torch's own code did (a decorator), its file:line)
        self._grad_off: list[tuple[Any, str | None]] = []
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

    def consumed_leaf_ids(self) -> set[int]:
        """``id()`` of live leaves whose gradient the script used (``inputs=``, a ``.grad`` read)."""
        return {i for i, r in self._consumed.items() if r() is not None}

    def optimizer_steps(self) -> list[tuple[int, Any]]:
        """``(autograd sequence nr before the step, optimizer)`` of the recorded steps, oldest first."""
        return [(s, r()) for s, r in self._steps if r() is not None]

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
        self._consumed.clear()
        self._steps.clear()

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

    def _note_consumed(self, tensors: list[Any]) -> None:
        for t in tensors[:64]:
            if isinstance(t, torch.Tensor) and t.grad_fn is None and len(self._consumed) < 4096:
                self._consumed[id(t)] = weakref.ref(t)

    def _drop_prov(self, t: torch.Tensor) -> None:
        self._prov.pop(id(t), None)

    def _register(self, prov: Provenance) -> int:
        """A new key for ``prov`` (no holder yet). Complexity: O(1) amortised.

        Memory stays bounded without dropping a live tag: of one exit site's keys, the newest
        ``_PER_SITE`` keep their autograd nodes; an older one keeps its kind, line and chain (a
        re-entry still finds it) and lets the nodes go. Nodes of a step long gone are not in
        the graph being probed anyway, and the newer values of the same site carry the current
        ones.
        """
        key = next(_KEYS)
        self._tagged[key] = [prov, 0]
        if prov.source_fns or prov.source_params or prov.parts:
            site = (prov.location, prov.kind)
            keys = self._heavy.get(site)
            if keys is None:
                keys = self._heavy[site] = []
            keys.append(key)
            if len(keys) > 2 * _PER_SITE:
                tagged = self._tagged
                for old in keys[:-_PER_SITE]:
                    e = tagged.get(old)
                    if e is not None:
                        e[0] = _light(e[0])
                del keys[:-_PER_SITE]
        return key

    def _release(self, key: int) -> None:
        e = self._tagged.get(key)
        if e is not None:
            e[1] -= 1
            if e[1] <= 0:
                del self._tagged[key]

    def _note_plain_write(self, a: np.ndarray, provs: list[Provenance], op: str, loc: str | None) -> None:
        """Remember that tagged data was written into the plain ndarray ``a``."""
        key = id(a)
        d = self._np_plain
        e = d.get(key)
        mine = [e[1]] if e is not None and e[0]() is a else []
        prov = Provenance.merge(mine + provs, op, loc)
        def gone(_: Any, key: int = key, d: dict = d) -> None:
            d.pop(key, None)

        try:
            ref = weakref.ref(a, gone)
        except TypeError:
            return
        d[key] = (ref, prov)

    def _array_prov(self, a: Any) -> Provenance | None:
        """The tag of an array about to re-enter torch: its own, or a write into a plain one."""
        p = _get_prov(a)
        if p is None and self._np_plain and isinstance(a, np.ndarray):
            e = self._np_plain.get(id(a))
            if e is not None and e[0]() is a:
                p = e[1]
        return p

    def _remember_value(self, v: float, prov: Provenance) -> None:
        """Remember an exit's float value for a later value match (per site, the latest few)."""
        site = (prov.location, prov.kind)
        vals = self._recent_by_site.get(site)
        if vals is None:
            vals = self._recent_by_site[site] = []
        vals.append(v)
        self._recent_items[v] = prov
        if len(vals) > _PER_SITE:
            old = vals.pop(0)
            if old not in vals and self._recent_items.get(old) is not None \
                    and self._recent_items[old].location == prov.location:
                del self._recent_items[old]
        if len(self._recent_by_site) > 256:  # sites are code lines: bounded, but be safe
            self._recent_by_site.clear()
            self._recent_items.clear()

    def _value_match(self, data: Any) -> Provenance | None:
        """An exit's value found in ``data`` (a float, or a list of them): the link is a guess."""
        recent = self._recent_items
        if not recent:
            return None
        stack, budget = [data], 64
        while stack and budget > 0:
            v = stack.pop()
            budget -= 1
            if type(v) is float:
                p = recent.get(v)
                if p is not None and _computed_float(v):
                    return p
            elif isinstance(v, (list, tuple)):
                stack.extend(v)
        return None

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
        """Tag module ownership; follow tagged data; note no_grad exits and re-entries.

        Complexity: O(arguments) per op; an op with no tagged input and grad mode on returns
        after the module bookkeeping (the fast path every op of a plain step takes).
        """
        if isinstance(out, torch.Tensor) and out.requires_grad and _gfn(out) is None \
                and not isinstance(out, torch.nn.Parameter) and not any(out is a for a in args) \
                and not out._is_view():
            # torch.randn(..., requires_grad=True): an input leaf made on purpose, not a cut.
            self._plain_leaves[id(out)] = weakref.ref(out)
            return
        try:
            fns = [o.grad_fn for o in ((out,) if isinstance(out, torch.Tensor) else out)
                   if isinstance(o, torch.Tensor) and o.grad_fn is not None]
        except RuntimeError:  # a no_grad view of a parameter written in place: not in any graph
            fns = [f for f in (_gfn(o) for o in ((out,) if isinstance(out, torch.Tensor) else out)
                               if isinstance(o, torch.Tensor)) if f is not None]
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
            # New tensors, and tensors written in place (copy_, scatter_add_, index_add_, out=):
            # a write carries what was in the target and what came in (a no_grad voxelizer).
            new_outs = [o for o in outs if not o.requires_grad]
            if not new_outs:
                return
            loc = self._no_grad_site() if req else user_location()
            for o in new_outs:
                src = [t for t in req if t is not o]
                written = any(o is i for i in ins)
                if written and not src and not provs:
                    continue
                prov = _no_grad_prov(provs, src, name if written else "no_grad: " + name, name, loc)
                self._set_prov(o, prov)
                if written and o._is_view():
                    self._tag_base(o, prov)
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
            if o._is_view() and any(o is i for i in ins):  # written in place through a view
                self._tag_base(o, prov)

    def _no_grad_site(self) -> str | None:
        """Where a no_grad exit happened, as a user would point at it.

        The op's own line, when the ``with torch.no_grad():`` that turned gradients off is in
        the same function (or unknown: a decorated function, a bare ``set_grad_enabled``);
        the ``with`` line itself when the op runs deeper, in code the block called (a
        voxelizer's comparisons and scatters are not where the user cut the graph).
        """
        g = self._grad_off
        if g and g[-1][0] is not None:
            f = user_frame(2)
            if f is not g[-1][0]:
                return g[-1][1]
        return user_location(2)

    def _tag_base(self, view: torch.Tensor, prov: Provenance) -> None:
        """A write into ``view`` lands in its base too: the base carries the tag as well."""
        base = view._base
        if base is None or base.requires_grad:
            return
        mine = self._tensor_prov(base)
        self._set_prov(base, Provenance.merge([mine, prov], prov.chain[-1][0] if prov.chain else "write",
                                              prov.chain[-1][1] if prov.chain else None)
                       if mine is not None and mine is not prov else prov)

    def _after_write(self, target: torch.Tensor, value: Any, op: str) -> None:
        """``target[idx] = value`` ran: the target carries what came in. Complexity: O(value)."""
        provs: list[Provenance] = []
        if self._prov or _SEEN_SCALARS:
            _collect(value, provs, budget=64)
        grad_on = torch.is_grad_enabled()
        req = [] if grad_on else [t for t in _tensors_in([value]) if t.requires_grad]
        if not provs and not req:
            return
        loc = self._no_grad_site() if req else user_location()
        if target.requires_grad:
            fn = _gfn(target)
            if grad_on and fn is not None and provs:
                # Tagged data met grad in the write (h[:, 0] = d.detach() with h from a net).
                prov = Provenance.merge(provs, op, loc) if len(provs) > 1 else provs[0]
                self._close(prov, "op:__setitem__", loc, target_fn=fn)
            return
        mine = self._tensor_prov(target)
        prov = _no_grad_prov(([mine] if mine is not None else []) + provs, req, op, op, loc)
        self._set_prov(target, prov)
        if target._is_view():
            self._tag_base(target, prov)

    def _from_data(self, out: torch.Tensor, data: Any, name: str) -> None:
        """A tensor made from ``data`` (torch.tensor, as_tensor, new_tensor, torch.Tensor(arr)).

        Its tag: the tags in ``data`` (arrays, tracked scalars, tagged tensors, lists of them, a
        plain ndarray that tagged data was written into); else tensors in ``data`` that require
        grad, copied out of autograd here (``torch.tensor([a[0], a[1]])``); else, marked as a
        guess, a value an exit produced. Complexity: O(size of data) up to a budget.
        """
        provs: list[Provenance] = []
        _collect(data, provs)
        if not provs and isinstance(data, np.ndarray):
            p = self._array_prov(data)
            if p is not None:
                provs.append(p)
        loc = user_location()
        prov: Provenance | None = None
        if provs:
            prov = Provenance.merge(provs, name, loc)
        elif _gfn(out) is None and out is not data:
            req = [t for t in itertools.islice(_tensors_deep(data), 64) if t.requires_grad and t is not out]
            if req:
                fns, params = _sources(req)
                prov = Provenance("detach", loc, fns, params, ((name, loc),))
            else:
                p = self._value_match(data)
                if p is not None:
                    # No tag, but the exact value an exit produced: link it, marked as a guess.
                    prov = Provenance(p.kind, p.location, p.source_fns, p.source_params,
                                      _cap(p.chain + (("value match", None), (name, loc))), guess=True)
        if prov is not None:
            if out.requires_grad and _gfn(out) is None:
                self._close(prov, name, loc, target_leaf=out, made_requires_grad=True)
            elif not out.requires_grad:
                self._set_prov(out, prov)
        elif out.requires_grad and _gfn(out) is None and out is not data:
            self._plain_leaves[id(out)] = weakref.ref(out)

    def _tag_new_nodes(self, fns: list[Any]) -> None:
        """Tag the nodes this call made with the innermost running module.

        A composite call (``F.multi_head_attention_forward``) shows us only its output, so walk
        back from it over the nodes created since the module was entered: autograd numbers nodes
        in creation order (``_sequence_nr``, per thread), and nodes already tagged by an inner
        module stop the walk. Cost: O(nodes the call made).
        """
        module, entry, line = self._modules[-1]
        _walk.TAGGED[0] = True
        # The forward line that made these nodes, for the page's node details: the op's own line
        # when the script called it (a relu in the user's forward), else the line that called the
        # module (found once per module call, in _pre_hook). A few frames at most, no string.
        f: Any = sys._getframe(3)  # _after_op, __torch_function__, then the op's caller
        for _ in range(4):
            if f is None or _is_user_file(f.f_code.co_filename):
                break
            f = f.f_back
        if f is not None and _is_user_file(f.f_code.co_filename):
            line = (f.f_code.co_filename, f.f_lineno)
        stack = list(fns)
        while stack:
            fn = stack.pop()
            md = fn.metadata
            if "graphprobe_module" in md:
                continue
            md["graphprobe_module"] = module
            md["graphprobe_line"] = line
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
        if not self.active:
            _sweep_modes()
            return
        try:
            if _COMPILER._is_compiling_flag and self._mode is not None:
                # Left while torch.compile compiles (a backward aot_autograd traces): its guards
                # refer to the global hooks and the mode stack as they are now, so taking them
                # off here would break the compile. Record nothing from now on; the hooks and
                # patches come off at the next module call or optimizer step outside the
                # compile, or when the run ends (release_modes).
                self._mode.off = True
                _DEFERRED.append(self)
            else:
                self._uninstall()
        finally:
            _ACTIVE = None
            self.active = False
            self._prov.clear()
            self._recent_items.clear()
            self._recent_by_site.clear()
            self._tagged.clear()
            self._heavy.clear()
            self._np_plain.clear()
            self._grad_off.clear()  # frames of blocks still open: hold none past the trace
            _SEEN_SCALARS.clear()

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        # Whether the attribute was the owner's own (a class may only inherit it: then the
        # patch is deleted again rather than set to what the base class has).
        d = getattr(owner, "__dict__", {})
        own = name in d if isinstance(owner, type) else True
        self._patches.append((owner, name, d.get(name) if isinstance(owner, type) else getattr(owner, name),
                              new, own))
        setattr(owner, name, new)

    def _install(self) -> None:
        try:
            _sweep_modes()
            from_numpy = torch.from_numpy
            tr = self

            def from_numpy_recorded(a: Any) -> torch.Tensor:
                out = from_numpy(a.view(np.ndarray) if isinstance(a, TrackedArray) else a)
                if _ACTIVE is tr and threading.get_ident() == tr._thread:
                    prov = tr._array_prov(a)
                    if prov is not None:
                        tr._set_prov(out, prov.then("from_numpy", user_location()))
                return out

            self._patch(torch, "from_numpy", from_numpy_recorded)
            for name in ("asarray", "array", "ascontiguousarray"):
                self._patch(np, name, _np_keep_tag(getattr(np, name), name))
            for name in _NP_ALLOCATORS:
                self._patch(np, name, _np_watch(getattr(np, name), name))
            self._new_done = False
            self._maybe_patch_new()
            # A user's TorchFunctionMode entered before the trace and left inside it must take
            # itself off the stack, not graphprobe's mode on top of it.
            self._patch(TorchFunctionMode, "__exit__", _exit_by_identity)
            from torch.autograd import grad_mode

            for cls in (grad_mode.no_grad, grad_mode.inference_mode, grad_mode.set_grad_enabled):
                self._patch(cls, "__enter__", _grad_off_enter(cls.__enter__, self))
                self._patch(cls, "__exit__", _grad_off_exit(cls.__exit__, self))
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
            torch._C._push_on_torch_function_stack(self._mode)
        except BaseException:
            self._uninstall()
            raise

    def _uninstall(self) -> None:
        mode, self._mode = self._mode, None
        if mode is not None:
            _leave_mode(mode)
        while self._handles:
            self._handles.pop().remove()
        while self._patches:
            owner, name, orig, new, own = self._patches.pop()
            if getattr(owner, name, None) is not new:
                continue  # someone patched over ours since: theirs stays (ours only forwards)
            if own:
                setattr(owner, name, orig)
            else:
                delattr(owner, name)
        self._modules.clear()
        self._paused = 0

    def _maybe_patch_new(self) -> None:
        """Watch ``torch.Tensor(arr)``, a door back into torch that no ``__torch_function__`` sees.

        It means patching ``torch.Tensor.__new__``, which torch.compile reads once, when it
        is first imported (``torch._dynamo.polyfills.tensor``, imported by the first optimizer
        a script builds): patched before that, dynamo would keep graphprobe's function for
        good. So the patch goes in only once that import is done (checked at install and at
        each module call, where a script's data first flows).
        """
        if self._new_done or "torch._dynamo.polyfills.tensor" not in sys.modules:
            return
        self._new_done = True
        tensor_new = torch.Tensor.__new__
        tr = self

        def tensor_new_recorded(cls: Any, *args: Any, **kwargs: Any) -> Any:
            out = tensor_new(cls, *args, **kwargs)
            if args and type(args[0]) is not int and _ACTIVE is tr and not tr._paused \
                    and threading.get_ident() == tr._thread and isinstance(out, torch.Tensor):
                tr._from_data(out, args[0], "torch.Tensor")
            return out

        self._patch(torch.Tensor, "__new__", tensor_new_recorded)

    def _pre_hook(self, module: Any, args: Any) -> None:
        if _COMPILER._is_compiling_flag:  # dynamo inlines global hooks: nothing to note there
            return
        if not self.active:  # left during a compile (see __exit__): come off now
            _sweep_modes()
            return
        if not self._new_done:
            self._maybe_patch_new()
        seen = self._seen_modules.get(id(module))
        if (seen is None or seen[0]() is not module) and len(self._seen_modules) < _MAX_SEEN:
            self._note_module(module)
        if threading.get_ident() == self._thread:
            f: Any = sys._getframe(1)  # the line that called the module, for its ops' details
            while f is not None and not _is_user_file(f.f_code.co_filename):
                f = f.f_back
            self._modules.append((module, self._seq_hi, (f.f_code.co_filename, f.f_lineno) if f else None))

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
        if _COMPILER._is_compiling_flag or not self.active or threading.get_ident() != self._thread:
            return
        mods = self._modules
        while mods:
            if mods.pop()[0] is module:
                break

    def _opt_pre(self, opt: Any, args: Any, kwargs: Any) -> tuple[Any, Any] | None:
        if _DEFERRED and not self.active:
            _sweep_modes()
            return None
        self._note_optimizer(opt)
        if threading.get_ident() != self._thread:
            return None
        if not self._paused:
            # Which losses an optimizer's step follows tells what the user meant them to train.
            self._steps.append((self._seq_hi, weakref.ref(opt)))
            del self._steps[:-_MAX_STEPS]
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


# -- torch's function-mode stack: graphprobe's mode is left by identity --------------------------

_STALE_MODES: list[Any] = []  # graphprobe modes left while not on the stack (see _leave_mode)


def _mode_stack() -> list[Any]:
    C = torch._C
    return [C._get_function_stack_at(i) for i in range(C._len_torch_function_stack())]


def _remove_from_stack(mode: Any) -> bool:
    """Take ``mode`` off torch's function-mode stack wherever it is; the modes above it stay, in
    order. False if it is not on the stack. Complexity: O(stack depth)."""
    C = torch._C
    stack = _mode_stack()
    idx = next((i for i in range(len(stack) - 1, -1, -1) if stack[i] is mode), None)
    if idx is None:
        return False
    above = [C._pop_torch_function_stack() for _ in range(len(stack) - 1 - idx)]
    C._pop_torch_function_stack()
    for m in reversed(above):
        C._push_on_torch_function_stack(m)
    return True


def _leave_mode(mode: "_Mode") -> None:
    """graphprobe's mode off every stack it is on, by identity, never by popping the top.

    Two moments when it can't be taken off yet: while torch.compile compiles (dynamo keeps the
    stack aside and puts it back after, and its guards refer to the modes by position: the
    saved copy must not change under it), and inside the mode's own ``__torch_function__``
    (torch holds it off the stack and pushes it back after). Then it only forwards from now on,
    and :func:`_sweep_modes` takes it off at the next module call or optimizer step, or when the
    run ends (:func:`release_modes`).
    """
    mode.off = True
    found = not _COMPILER._is_compiling_flag and _remove_from_stack(mode)
    if not found:
        _STALE_MODES.append(mode)
        if not _SWEEP_HOOKS:
            # Sweep at the next module call or optimizer step (neither runs inside a mode's
            # __torch_function__): a script that keeps running gets its stack back soon.
            from torch.optim import optimizer as optim_mod

            mm = torch.nn.modules.module
            _SWEEP_HOOKS.append(mm.register_module_forward_pre_hook(lambda *a: _sweep_modes()))
            _SWEEP_HOOKS.append(optim_mod.register_optimizer_step_pre_hook(lambda *a: _sweep_modes()))


_SWEEP_HOOKS: list[Any] = []
_DEFERRED: list[Any] = []  # traces left while torch.compile compiled, still to uninstall


def _sweep_modes() -> None:
    """Take graphprobe modes left behind (see :func:`_leave_mode`) off the stack."""
    if _COMPILER._is_compiling_flag:  # dynamo traces hooks too, and owns the stack meanwhile
        return
    while _DEFERRED:
        _DEFERRED.pop()._uninstall()
    for m in list(_STALE_MODES):
        if _remove_from_stack(m):
            _STALE_MODES.remove(m)
    del _STALE_MODES[:-8]  # a mode that never came back: forget it (it only forwards)
    if not _STALE_MODES:
        while _SWEEP_HOOKS:
            _SWEEP_HOOKS.pop().remove()


def release_modes() -> None:
    """Make sure nothing of graphprobe's stays on torch's function-mode stack, nor its hooks and
    patches from a trace left during a compile (call when a run ends)."""
    _sweep_modes()
    if _COMPILER._is_compiling_flag:
        return
    for m in _mode_stack():
        if isinstance(m, _Mode) and m.off:
            _remove_from_stack(m)
    _STALE_MODES.clear()
    _sweep_modes()


_ORIG_MODE_EXIT = TorchFunctionMode.__exit__


def _exit_by_identity(self: Any, exc_type: Any = None, exc_val: Any = None, exc_tb: Any = None) -> None:
    """``TorchFunctionMode.__exit__`` while a trace records: the mode leaving takes itself off
    the stack, wherever it is (torch's own pops the top, which may be graphprobe's)."""
    C = torch._C
    n = C._len_torch_function_stack()
    if n and C._get_function_stack_at(n - 1) is self:
        C._pop_torch_function_stack()
    elif not _remove_from_stack(self):
        _ORIG_MODE_EXIT(self, exc_type, exc_val, exc_tb)


def _grad_off_enter(orig: Callable[..., Any], tr: "Trace") -> Callable[..., Any]:
    """``no_grad.__enter__`` (and its kin), noting where the block was entered."""

    def __enter__(self: Any) -> Any:
        out = orig(self)
        if _ACTIVE is tr and threading.get_ident() == tr._thread:
            f = sys._getframe(1)
            fn = f.f_code.co_filename
            user = _is_user_file(fn) and not torch.is_grad_enabled()
            tr._grad_off.append((f, f"{fn}:{f.f_lineno}") if user else (None, None))
        return out

    __enter__.__wrapped__ = orig  # type: ignore[attr-defined]
    return __enter__


def _grad_off_exit(orig: Callable[..., Any], tr: "Trace") -> Callable[..., Any]:
    def __exit__(self: Any, *exc: Any) -> Any:
        if _ACTIVE is tr and threading.get_ident() == tr._thread and tr._grad_off:
            tr._grad_off.pop()
        return orig(self, *exc)

    __exit__.__wrapped__ = orig  # type: ignore[attr-defined]
    return __exit__


# -- numpy doors ---------------------------------------------------------------------------------

#: allocators whose result user code may fill by index: handed back watched (see TrackedArray)
_NP_ALLOCATORS = ("zeros", "empty", "ones", "full", "zeros_like", "empty_like", "ones_like", "full_like")


def _np_watch(orig: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrap an allocator so that a buffer user code makes is watched for tagged writes.

    Only calls from user code: numpy's, torch's and libraries' own buffers stay plain. A
    ``*_like`` of a tracked array is a fresh buffer too: it takes the shape, not the tag.
    """

    def watch(*args: Any, **kwargs: Any) -> Any:
        proto = args[0] if name.endswith("_like") and args else None
        if isinstance(proto, TrackedArray):
            args = (proto.view(np.ndarray),) + args[1:]
        fill_prov = None
        if name in ("full", "full_like"):  # the fill value is data: np.full(n, loss.item())
            fill_prov = _get_prov(args[1] if len(args) > 1 else kwargs.get("fill_value"))
        out = orig(*args, **kwargs)
        tr = _ACTIVE
        if tr is not None and type(out) is np.ndarray and threading.get_ident() == tr._thread \
                and _is_user_file(sys._getframe(1).f_code.co_filename):
            w = out.view(TrackedArray)
            if fill_prov is not None:
                _assign(w, _tag(fill_prov.then(f"np.{name}", user_location())))
            return w
        return out

    watch.__name__ = name
    watch.__doc__ = orig.__doc__
    watch.__wrapped__ = orig  # type: ignore[attr-defined]
    return watch


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
        elif isinstance(a, np.ndarray):
            p = tr._array_prov(a)
            if p is not None:
                provs.append(p)
        elif isinstance(a, torch.Tensor):
            p = tr._tensor_prov(a)
            if p is None and a.requires_grad:  # np.asarray(t) on a tensor that requires grad
                fn = _gfn(a)
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
