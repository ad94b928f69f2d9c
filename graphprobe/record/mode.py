"""The dispatch mode: a ``TorchFunctionMode`` that sees each tensor call while a trace records.

Exits (``.detach()``, ``.data``, ``.numpy()``, ``.item()``, ``.tolist()``) tag what they return,
re-entries (``torch.tensor``, ``requires_grad_``...) and writes (``buf[i] = x``) are handed to
the recorder. Helpers that read tensors cheaply live here too.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Iterable, Iterator

import torch
from torch.overrides import TorchFunctionMode

from ..errors import _GraphprobeBug
from .frames import user_location
from .provenance import _MAX_SOURCES, Provenance
from .tagged import _computed_float, _track_list, _track_scalar, _wrap_result

#: the recorder (:class:`graphprobe.record.recorder.Trace`), named for the annotations only: it
#: imports this module, so this module does not import it
Trace = Any

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
