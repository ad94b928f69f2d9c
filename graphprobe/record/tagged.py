"""Values that carry a provenance: tracked numpy arrays and Python scalars, and their tags.

A tagged value carries only an integer key into the active trace's registry (see :func:`_tag`),
never the provenance itself.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

import numpy as np
import torch

from . import state as _state
from .frames import user_location
from .provenance import Provenance

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
    tr = _state.active
    return tr._register(prov) if tr is not None else 0


def _assign(obj: Any, key: int) -> None:
    """Give ``obj`` (a tracked array or scalar) the tag ``key``, counting holders in and out."""
    old = obj._gp_key
    obj._gp_key = key
    tr = _state.active
    if tr is not None and key != old:
        if key:
            e = tr._tagged.get(key)
            if e is not None:
                e[1] += 1
        if old:
            tr._release(old)


def _release_key(key: int) -> None:
    """One holder of ``key`` is gone (``__del__`` of a tracked value)."""
    tr = _state.active
    if tr is not None and key:
        tr._release(key)


def _get_prov(x: Any) -> "Provenance | None":
    if not isinstance(x, (TrackedArray, TrackedFloat, TrackedInt)):
        return None
    tr = _state.active
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
            tr = _state.active
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
        if _state.active is not None and type(value) not in _UNTAGGABLE:
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
        if not provs or _state.active is None:
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
        if not provs or _state.active is None:
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
    tr = _state.active
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
        if res is NotImplemented or _state.active is None:
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
    tr = _state.active
    e = tr._tagged.get(key) if tr is not None else None
    if tr is not None and e is not None and e[1] <= 0:  # no leaf took it (empty, or bools only)
        del tr._tagged[key]
    return root


def _computed_float(v: Any) -> bool:
    """A float that looks computed (not 0.5, 2.0 or 1e-3): a value match on it is evidence."""
    return type(v) is float and v == v and abs(v) != float("inf") and v != round(v, 4)
