"""The oracle for the real-code harness: what ``torch.autograd.grad`` says each backward reaches.

Loaded by ``sitecustomize`` (this folder first on ``PYTHONPATH``) in every Python process of a
run when ``GP_ORACLE_OUT`` is set, so that spawned children (mnist_hogwild) and torchrun ranks
are covered as well as the script's own process. It wraps ``Tensor.backward``,
``torch.autograd.backward`` and ``torch.autograd.grad``; at each call made from user code
(a file under ``GP_ORACLE_USER``) during the first step it computes, before the real call,
``torch.autograd.grad(root, every trainable parameter of every live module and optimizer,
allow_unused=True, retain_graph=True)`` for each root, and notes which parameters got a
gradient. It also notes the names a user would use for each parameter, found from the frames
of the call stack, ``self`` attributes, lists and dicts (a bounded walk), and the script's
globals.

The step ends when every optimizer alive has stepped at least once after the first backward
(torch's global optimizer step hooks), or, for a script without an optimizer, when a backward
call site repeats; at the end of the script otherwise. Then each process writes
``$GP_ORACLE_OUT.<pid>.json`` and leaves with ``os._exit(0)`` (the harness only needs the step).

This is harness code, not graphprobe: it must not import graphprobe.
"""
from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import threading
import types
from typing import Any

_OUT = os.environ.get("GP_ORACLE_OUT")
_USER = os.path.realpath(os.environ.get("GP_ORACLE_USER", os.getcwd()))
_MAX_DEPTH = 3  # attribute/list hops from a frame local when looking for names
_MAX_PATHS = 4  # names kept per object
_lock = threading.RLock()


class _State:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.sites: set[str] = set()
        self.stepped: set[int] = set()
        self.params: dict[int, dict[str, Any]] = {}  # id(param) -> {shape, names, optimizers}
        self.keep: dict[int, Any] = {}  # id -> param, so ids stay unique while we run
        self.done = False
        self.end = "end of script"
        self.inside = threading.local()


_S = _State()


def _user_frame() -> Any:
    f = sys._getframe(2)
    while f is not None:
        fn = os.path.realpath(f.f_code.co_filename)
        if fn.startswith(_USER + os.sep) and "gp_oracle" not in fn:
            return f
        f = f.f_back
    return None


def _site(f: Any) -> str:
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"


def _live() -> tuple[list[Any], list[Any]]:
    import torch

    mods, opts = [], []
    for o in gc.get_objects():
        t = type(o)  # type(), not isinstance: lazy proxies warn or raise on __class__
        if issubclass(t, torch.nn.Module):
            mods.append(o)
        elif issubclass(t, torch.optim.Optimizer):
            opts.append(o)
    return mods, opts


def _bindings(frame: Any) -> list[tuple[str, Any]]:
    """(path, object) for modules, optimizers and parameters reachable from the stack's names."""
    import torch

    roots: list[tuple[str, Any]] = []
    f = frame
    while f is not None:
        # User frames only: torch's own frames (an optimizer's ``self``, LBFGS's ``group``) are
        # not names a user would recognise.
        if os.path.realpath(f.f_code.co_filename).startswith(_USER + os.sep):
            roots += [(k, v) for k, v in f.f_locals.items()]
        f = f.f_back
    main = sys.modules.get("__main__")
    if main is not None:
        roots += [(k, v) for k, v in vars(main).items() if not k.startswith("__")]
    out: list[tuple[str, Any]] = []
    # An object reached by several names (``self`` in a method, ``t`` in the caller) keeps a few
    # of them: each is a name a user may type.
    seen: dict[int, int] = {}
    todo = [(k, v, 0) for k, v in roots]
    while todo:
        path, v, d = todo.pop(0)
        if seen.get(id(v), 0) >= _MAX_PATHS or isinstance(
                v, (types.ModuleType, type, types.FunctionType, str, bytes, int, float)):
            continue
        seen[id(v)] = seen.get(id(v), 0) + 1
        if isinstance(v, (torch.nn.Module, torch.optim.Optimizer)) or (
                isinstance(v, torch.Tensor) and v.is_leaf and v.requires_grad):
            out.append((path, v))
        if d >= _MAX_DEPTH or isinstance(v, torch.Tensor):
            continue
        if isinstance(v, (list, tuple)) and len(v) <= 64:
            todo += [(f"{path}[{i}]", x, d + 1) for i, x in enumerate(v)]
        elif isinstance(v, dict) and len(v) <= 64:
            todo += [(f"{path}[{k!r}]", x, d + 1) for k, x in v.items() if isinstance(k, (str, int))]
        elif not isinstance(v, torch.nn.Module) and hasattr(v, "__dict__") and not isinstance(v, torch.optim.Optimizer):
            try:
                items = list(vars(v).items())
            except TypeError:
                continue
            if len(items) <= 200:
                todo += [(f"{path}.{k}", x, d + 1) for k, x in items if not k.startswith("__")]
        elif isinstance(v, torch.nn.Module):
            # Plain attributes of a module that hold modules in lists (forward-forward's self.layers).
            for k, x in vars(v).items():
                if isinstance(x, (list, tuple, dict)) and not k.startswith("_"):
                    todo.append((f"{path}.{k}", x, d + 1))
    return out


def _note_params(frame: Any) -> list[Any]:
    """Every trainable parameter of every live module and optimizer; their names noted."""
    mods, opts = _live()
    params: dict[int, Any] = {}
    for m in mods:
        for p in m.parameters():
            if p.requires_grad:
                params[id(p)] = p
    for o in opts:
        for g in o.param_groups:
            for p in g["params"]:
                if getattr(p, "requires_grad", False):
                    params[id(p)] = p
    for pid, p in params.items():
        info = _S.params.setdefault(pid, {"shape": list(p.shape), "names": set(), "optimizers": set()})
        _S.keep[pid] = p
    for path, v in _bindings(frame):
        import torch

        if isinstance(v, torch.nn.Module):
            for rel, p in v.named_parameters(remove_duplicate=False):
                if id(p) in _S.params:
                    _S.params[id(p)]["names"].add(f"{path}.{rel}")
        elif isinstance(v, torch.optim.Optimizer):
            for g in v.param_groups:
                for p in g["params"]:
                    if id(p) in _S.params:
                        _S.params[id(p)]["optimizers"].add(path)
        elif id(v) in _S.params:
            _S.params[id(v)]["names"].add(path)
    return list(params.values())


def _finish(reason: str) -> None:
    with _lock:
        if _S.done:
            return
        _S.done = True
        _S.end = reason
        _write()


def _write() -> None:
    if not _OUT:
        return
    keys = {pid: i for i, pid in enumerate(_S.params)}
    data = {
        "pid": os.getpid(),
        "rank": os.environ.get("RANK"),
        "argv": sys.argv,
        "end": _S.end,
        "params": [{"id": keys[pid], "shape": v["shape"], "names": sorted(v["names"]),
                    "optimizers": sorted(v["optimizers"])} for pid, v in _S.params.items()],
        "calls": [{**c, "roots": [sorted(keys[p] for p in r) if r is not None else None
                                  for r in c["roots"]],
                   "terms": [{"name": t["name"], "reach": sorted(keys[p] for p in t["reach"])}
                             for t in c.get("terms", [])]} for c in _S.calls],
        "stepped": len(_S.stepped),
    }
    tmp = f"{_OUT}.{os.getpid()}.json.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, f"{_OUT}.{os.getpid()}.json")


def _record(kind: str, roots: list[Any], grads: list[Any] | None, create_graph: bool) -> None:
    import torch

    f = _user_frame()
    if f is None or _S.done:
        return
    site = _site(f)
    if kind != "grad" or not create_graph:
        if site in _S.sites and not _live()[1]:
            _finish("backward call site repeated")
            os._exit(0)
        _S.sites.add(site)
    params = _note_params(f)
    reached: list[Any] = []
    for i, r in enumerate(roots):
        if not isinstance(r, torch.Tensor) or not r.requires_grad:
            reached.append(None)
            continue
        go = None
        if grads is not None and i < len(grads) and grads[i] is not None:
            go = grads[i]
        elif r.numel() != 1:
            go = torch.ones_like(r)
        try:
            gs = _ORIG["grad"](r, params, grad_outputs=go, allow_unused=True, retain_graph=True) if params else []
        except RuntimeError as e:
            reached.append(None)
            _S.calls.append({"site": site, "kind": kind, "error": str(e).splitlines()[0], "roots": []})
            continue
        reached.append({id(p) for p, g in zip(params, gs) if g is not None})
    terms = []
    for name, t, reach in _terms(f, roots, params):
        terms.append({"name": name, "reach": reach})
    _S.calls.append({"site": site, "kind": kind, "create_graph": bool(create_graph),
                     "thread": threading.current_thread().name, "roots": reached,
                     "root_names": [[k for k, v in f.f_locals.items() if v is r] for r in roots],
                     "terms": terms})


_ADDITIVE = {"AddBackward0", "SubBackward0", "AddBackward1", "SubBackward1"}
_SCALED = {"MulBackward0", "MulBackward1", "DivBackward0", "DivBackward1", "NegBackward0"}


def _terms(f: Any, roots: list[Any], params: list[Any]) -> list[tuple[str, Any, Any]]:
    """Named 0-dim locals of the calling frame that are additive terms of a root (loss1 + loss2).

    A term is reached from the root's grad_fn through additions and subtractions only; a factor
    inside a sum (actor_critic's loop variable ``log_prob``) is not one.
    """
    import torch

    by_fn: dict[Any, str] = {}
    for k, v in f.f_locals.items():
        if isinstance(v, torch.Tensor) and v.dim() == 0 and v.grad_fn is not None and not k.startswith("_") \
                and all(v is not r for r in roots):
            by_fn.setdefault(v.grad_fn, k)
    found: list[tuple[str, Any, Any]] = []
    for r in roots:
        if not isinstance(r, torch.Tensor) or r.grad_fn is None or type(r.grad_fn).__name__ not in _ADDITIVE:
            continue
        stack, seen = [r.grad_fn], set()
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if fn in by_fn and fn is not r.grad_fn:
                name = by_fn[fn]
                t = f.f_locals[name]
                gs = _ORIG["grad"](t, params, allow_unused=True, retain_graph=True) if params else []
                found.append((name, t, sorted_ids({id(p) for p, g in zip(params, gs) if g is not None})))
                # A term's own terms are terms too (det_loss = class_loss + reg_loss): walk on.
            if type(fn).__name__ in _ADDITIVE:
                stack += [nf for nf, _ in fn.next_functions]
            elif type(fn).__name__ in _SCALED and sum(nf is not None for nf, _ in fn.next_functions) == 1:
                # ``0.1 * det_loss``: a term times a constant is still a term.
                stack += [nf for nf, _ in fn.next_functions if nf is not None]
    return found


def sorted_ids(ids: set[int]) -> list[int]:
    return sorted(ids)


def _as_list(x: Any) -> list[Any]:
    import torch

    if isinstance(x, torch.Tensor):
        return [x]
    if x is None:
        return []
    return list(x)


_ORIG: dict[str, Any] = {}


def install() -> None:
    import torch


    _ORIG.update(tb=torch.Tensor.backward, ab=torch.autograd.backward, grad=torch.autograd.grad)

    def guarded(fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            if getattr(_S.inside, "on", False) or _S.done:
                return fn(*a, **k, _real=True)
            _S.inside.on = True
            try:
                with _lock:
                    fn(*a, **k, _real=False)
            except Exception as e:  # the oracle must never break the script
                _S.calls.append({"site": "?", "kind": "oracle_error", "error": repr(e)[:200], "roots": []})
            finally:
                _S.inside.on = False
            _S.inside.on = True
            try:
                return fn(*a, **k, _real=True)
            finally:
                _S.inside.on = False
        return wrapper

    def tb(self: Any, gradient: Any = None, retain_graph: Any = None, create_graph: bool = False,
           inputs: Any = None, *, _real: bool) -> Any:
        if _real:
            return _ORIG["tb"](self, gradient, retain_graph, create_graph, inputs=inputs)
        _record("backward", [self], [gradient], create_graph)

    def ab(tensors: Any, grad_tensors: Any = None, retain_graph: Any = None, create_graph: bool = False,
           grad_variables: Any = None, inputs: Any = None, *, _real: bool) -> Any:
        if _real:
            return _ORIG["ab"](tensors, grad_tensors, retain_graph, create_graph, grad_variables, inputs=inputs)
        _record("autograd.backward", _as_list(tensors), _as_list(grad_tensors) or None, create_graph)

    def gr(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: Any = None,
           create_graph: bool = False, *a: Any, _real: bool, **k: Any) -> Any:
        if _real:
            return _ORIG["grad"](outputs, inputs, grad_outputs, retain_graph, create_graph, *a, **k)
        _record("grad", _as_list(outputs), _as_list(grad_outputs) or None, create_graph)

    torch.Tensor.backward = guarded(tb)
    torch.autograd.backward = guarded(ab)
    torch.autograd.grad = guarded(gr)

    def post_step(opt: Any, args: Any, kwargs: Any) -> None:
        if _S.done or not _S.calls:
            return
        _S.stepped.add(id(opt))
        live = _live()[1]
        if all(id(o) in _S.stepped for o in live):
            _finish("every optimizer stepped")
            sys.stdout.flush()
            os._exit(0)

    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(post_step)
    atexit.register(lambda: _finish("end of script"))


if _OUT:
    install()
