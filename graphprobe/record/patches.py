"""The patches a trace installs besides its mode: ``no_grad`` blocks, and numpy's doors.

Each function here builds a wrapper around the original, which it keeps as ``__wrapped__``;
the recorder installs and removes them (by identity, see ``Trace._patch``).
"""
from __future__ import annotations

import sys
import threading
import weakref
from typing import Any, Callable

import numpy as np
import torch

from . import state as _state
from .frames import user_location
from ..locations import is_user_file as _is_user_file
from .mode import _gfn
from .provenance import Provenance
from .tagged import TrackedArray, TrackedFloat, TrackedInt, _assign, _collect, _get_prov, _tag, _unwrap, _wrap_result

#: the recorder (:class:`graphprobe.record.recorder.Trace`), named for the annotations only: it
#: imports this module, so this module does not import it
Trace = Any

def _grad_off_enter(orig: Callable[..., Any], tr: "Trace") -> Callable[..., Any]:
    """``no_grad.__enter__`` (and its kin), noting where the block was entered."""

    def __enter__(self: Any) -> Any:
        out = orig(self)
        if _state.active is tr and threading.get_ident() == tr._thread:
            f = sys._getframe(1)
            fn = f.f_code.co_filename
            user = _is_user_file(fn) and not torch.is_grad_enabled()
            tr._grad_off.append((f, f"{fn}:{f.f_lineno}") if user else (None, None))
        return out

    __enter__.__wrapped__ = orig  # type: ignore[attr-defined]
    return __enter__


def _grad_off_exit(orig: Callable[..., Any], tr: "Trace") -> Callable[..., Any]:
    def __exit__(self: Any, *exc: Any) -> Any:
        if _state.active is tr and threading.get_ident() == tr._thread and tr._grad_off:
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
        tr = _state.active
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
        tr = _state.active
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
