"""Intercepting the step: backward and grad calls, the optimizers, threads and child processes.

:class:`_Capture` wraps ``Tensor.backward``, ``torch.autograd.backward``/``grad`` and the
optimizers (torch's global step hooks), decides which calls belong to the step (see
:mod:`graphprobe.run`), and builds the report once the step is complete.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import os
import pickle
import shutil
import sys
import tempfile
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import _GraphprobeBug
from ..io import write_atomic
from ..model.findings import ScriptError as ScriptErrorFinding
from ..probing import build_report, frame_tensors
from ..locations import is_user_file as _is_user_file
from ..record.names import collect_known, frame_namespaces, name_of
from ..record.recorder import Trace, TraceSnapshot
from ..record.frames import user_frame, user_location
from ..record.terms import loss_terms
from ..report import Report
from ..walk import Root
from .diagnose import TWICE, explain_backward_error, source_expr
from .options import RunOptions

__all__ = ["MAX_CALLS", "MAX_OPT_STEPS"]

MAX_CALLS = 32  # backward calls in one captured round before the bound ends it
MAX_OPT_STEPS = 32  # optimizer steps in one captured round before the bound ends it

_TWICE = "backward through the graph a second time"
_NO_GRAD = "does not require grad"
_DDP_UNUSED = "Expected to have finished reduction in the prior iteration"
# What backward/grad take as one root rather than a sequence of them (GradientEdge: torch >= 2.2).
_ONE_ROOT: tuple[type, ...] = (torch.Tensor,) + tuple(
    t for t in (getattr(torch.autograd.graph, "GradientEdge", None),) if t is not None)
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_GP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # graphprobe/

# The capture now running in this process (a forked child finds its parent's here and drops it).
_CURRENT: "_Capture | None" = None



class _StopCapture(BaseException):
    """Raised inside the script once the step is captured, to end the run."""


def _ours(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn`` as graphprobe's own processing: an exception in it is graphprobe's bug."""
    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (_StopCapture, _GraphprobeBug):
            raise
        except Exception as e:
            raise _GraphprobeBug(f"graphprobe failed in {fn.__name__}") from e

    return inner


@dataclass
class _Call:
    site: str | None
    roots: list[Root]
    retain: bool
    reached: list[set[int] | None] | None = None  # per root: id() of the parameters a real backward reached


def _caller_is_torch(depth: int) -> bool:
    """True when the frame ``depth`` levels up (the caller of a wrapped backward) is torch's own."""
    f: Any = sys._getframe(depth + 1)
    while f is not None and f.f_code.co_filename.startswith(_GP_DIR):
        f = f.f_back
    return f is not None and f.f_code.co_filename.startswith(_TORCH_DIR)


def _seq_now() -> int:
    """The autograd sequence number a node made now would get (per thread)."""
    with torch.enable_grad():
        return (torch.zeros((), requires_grad=True) * 1).grad_fn._sequence_nr()  # type: ignore[union-attr]


class _Capture:
    def __init__(self, opts: RunOptions, tr: Trace) -> None:
        self.opts = opts
        self.tr = tr
        self.calls: list[_Call] = []
        self.round_sites: set[Any] = set()
        self.rounds = 0
        self.round_calls = 0  # backward calls of the round now being captured
        self.round_steps = 0  # optimizer steps in it
        self.stepped: set[int] = set()  # id() of the optimizers that stepped in this round
        self.ever_stepped: set[int] = set()
        self.optimizers: dict[int, weakref.ref] = {}  # every optimizer the script built (or stepped)
        self.last_seq = -1  # autograd sequence number at the previous recorded backward
        self.zero_grad_first = False  # no optimizer, and this round began with a zero_grad
        self.pending_finish = False  # keep_running: the round ended inside a hook; finish at the next safe point
        self.depth = 0
        self.mute = 0  # >0 inside a closure's re-evaluation: nothing is recorded
        self.done = False
        self.report: Report | None = None
        self.errors: list[ScriptErrorFinding] = []
        self.notes: list[str] = []
        self.freed_fns: list[Any] = []
        self.frame: Any = None
        self.known: Any = None  # names as each backward of the step saw them, merged (names.Known)
        self.call_known: Any = None  # this backward's
        self.terms: list[Root] = []
        self.snapshot = TraceSnapshot()
        self.fn_names: dict[Any, str] = {}
        self.leaf_names: dict[int, str] = {}
        self.backward_failed = False
        self.patches: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original, ours)
        self.handles: list[Any] = []
        self.inner: list[Root] = []  # autograd.grad(create_graph=True) outputs, should no loss follow
        # threads
        self.run_thread = threading.get_ident()  # the thread running the script
        self.train_thread: int | None = None  # the thread whose step is captured
        self.thread_mode: Any = None  # the recorder's mode on a training thread of the script
        self.warmup = False  # the training thread's first round, whose forward ran unrecorded
        self.warm: list[_Call] = []
        self.lock = threading.Lock()
        self.script_running = True
        # processes
        self.child_dir: str | None = None
        self.children: list[Any] = []  # multiprocessing Process objects started, in order
        self.is_child = False
        # the stop
        self.stopping = False
        self.skipped_saves: list[str] = []
        self.user_atexit: list[Any] = []

    # -- patches ------------------------------------------------------------------------
    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self.patches.append((owner, name, owner.__dict__.get(name, _MISSING) if isinstance(owner, type)
                             else getattr(owner, name), new))
        setattr(owner, name, new)

    def install(self) -> None:
        global _CURRENT
        cap = self
        orig_tb = torch.Tensor.backward
        orig_ab = torch.autograd.backward
        orig_grad = torch.autograd.grad

        # Positions after the first argument: Tensor.backward(gradient, retain_graph, create_graph,
        # inputs); autograd.backward(grad_tensors, retain_graph, create_graph, grad_variables,
        # inputs); autograd.grad(inputs, grad_outputs, retain_graph, create_graph, ...).
        def tensor_backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if cap.passive() or _caller_is_torch(1):
                return orig_tb(self, *args, **kwargs)
            return cap.around([self], _retain(args, kwargs, 1, 2),
                              lambda: orig_tb(self, *args, **kwargs),
                              confirmable=_arg(args, kwargs, "inputs", 3, None) is None)

        def autograd_backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            if cap.passive() or _caller_is_torch(1):
                return orig_ab(tensors, *args, **kwargs)
            tensors, ts = _materialise(tensors)  # a generator is read once, here, and passed on as a tuple
            return cap.around(ts, _retain(args, kwargs, 1, 2),
                              lambda: orig_ab(tensors, *args, **kwargs),
                              confirmable=_arg(args, kwargs, "inputs", 4, None) is None)

        def autograd_grad(outputs: Any, *args: Any, **kwargs: Any) -> Any:
            if cap.passive() or _caller_is_torch(1):
                return orig_grad(outputs, *args, **kwargs)
            outputs, ts = _materialise(outputs)
            if _arg(args, kwargs, "create_graph", 3, False):
                # Part of the graph being built (a gradient penalty, a derivative, an inner step):
                # the loss is what the script backwards afterwards.
                return cap.inner_grad(ts, lambda: orig_grad(outputs, *args, **kwargs))
            # grad() computes only its inputs' gradients: parameter hooks can't confirm anything.
            return cap.around(ts, _retain(args, kwargs, 2, 3),
                              lambda: orig_grad(outputs, *args, **kwargs), confirmable=False)

        ours: Any
        for ours, orig in ((tensor_backward, orig_tb), (autograd_backward, orig_ab), (autograd_grad, orig_grad)):
            ours.__wrapped__ = orig  # the recorder knows our wrappers by this
        self._patch(torch.Tensor, "backward", tensor_backward)
        self._patch(torch.autograd, "backward", autograd_backward)
        self._patch(torch.autograd, "grad", autograd_grad)

        opt_cls = torch.optim.Optimizer
        orig_init = opt_cls.__init__

        def optimizer_init(opt: Any, *args: Any, **kwargs: Any) -> None:
            orig_init(opt, *args, **kwargs)
            cap.note_optimizer(opt)

        self._patch(opt_cls, "__init__", optimizer_init)
        for owner in (opt_cls, torch.nn.Module):
            self._patch(owner, "zero_grad", _zero_grad_wrapper(cap, owner.zero_grad))
        orig_save = torch.save

        def save(*args: Any, **kwargs: Any) -> Any:
            if cap.stopping and not _caller_is_torch(1):
                f = args[1] if len(args) > 1 else kwargs.get("f")
                cap.skipped_saves.append(str(f) if isinstance(f, (str, os.PathLike)) else type(f).__name__)
                return None
            return orig_save(*args, **kwargs)

        self._patch(torch, "save", save)
        orig_register = atexit.register

        def register(func: Any, *args: Any, **kwargs: Any) -> Any:
            out = orig_register(func, *args, **kwargs)
            if cap.script_running and not cap.done and not _caller_is_torch(1) \
                    and _is_user_file(sys._getframe(1).f_code.co_filename):
                cap.user_atexit.append(func)
            return out

        self._patch(atexit, "register", register)
        orig_hook = threading.excepthook

        def excepthook(args: Any) -> None:
            if isinstance(args.exc_value, _StopCapture):
                return  # graphprobe ended this thread after capturing its step
            orig_hook(args)

        self._patch(threading, "excepthook", excepthook)
        import multiprocessing.process as mp_process

        base = mp_process.BaseProcess
        orig_start, orig_join = base.start, base.join

        def start(proc: Any) -> None:
            cap.start_child(proc, orig_start)

        def join(proc: Any, timeout: Any = None) -> None:
            orig_join(proc, timeout)
            cap.after_join()

        self._patch(base, "start", start)
        self._patch(base, "join", join)
        from torch.optim import optimizer as optim_mod

        self.handles.append(optim_mod.register_optimizer_step_pre_hook(self.opt_pre))
        self.handles.append(optim_mod.register_optimizer_step_post_hook(self.opt_post))
        _CURRENT = self

    def uninstall(self) -> None:
        global _CURRENT
        while self.handles:
            self.handles.pop().remove()
        while self.patches:
            owner, name, orig, ours = self.patches.pop()
            now = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
            if now is not ours:
                continue  # someone patched over ours: leave theirs (ours passes through once done)
            if orig is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, orig)
        if _CURRENT is self:
            _CURRENT = None

    def passive(self) -> bool:
        """True when nothing is to be recorded here (done, nested, muted, another thread)."""
        if self.depth or self.done or self.mute or not self.tr.active:
            return True
        t = self.train_thread
        return t is not None and t != threading.get_ident()

    # -- optimizers -----------------------------------------------------------------------
    def note_optimizer(self, opt: Any) -> None:
        self.optimizers.setdefault(id(opt), weakref.ref(opt))

    def live_optimizers(self) -> list[Any]:
        out = []
        for k, r in list(self.optimizers.items()):
            o = r()
            if o is None:
                del self.optimizers[k]
            else:
                out.append(o)
        return out

    @_ours
    def opt_pre(self, opt: Any, args: Any, kwargs: Any) -> Any:
        self.note_optimizer(opt)
        if self.done or self.passive_thread():
            return None
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None or not callable(closure):
            return None
        # LBFGS-style step(closure): the closure's first evaluation is the step's loss, recorded
        # with its cuts (the recorder pauses inside step()); its re-evaluations are line search.
        cap, calls = self, [0]

        def recorded_closure() -> Any:
            calls[0] += 1
            if calls[0] > 1 or cap.done:
                cap.mute += 1
                try:
                    return closure()
                finally:
                    cap.mute -= 1
            paused, cap.tr._paused = cap.tr._paused, 0
            try:
                return closure()
            finally:
                cap.tr._paused = paused

        if "closure" in kwargs:
            return args, {**kwargs, "closure": recorded_closure}
        return (args[0], recorded_closure, *args[2:]), kwargs

    @_ours
    def opt_post(self, opt: Any, args: Any, kwargs: Any) -> None:
        if self.done or self.passive_thread() or not self.round_calls:
            return  # the window starts at the round's first backward
        self.stepped.add(id(opt))
        self.ever_stepped.add(id(opt))
        self.round_steps += 1
        if all(id(o) in self.stepped for o in self.live_optimizers()):
            self.end_round(in_hook=True)
        elif self.round_steps >= MAX_OPT_STEPS:
            self.bound_hit(f"{self.round_steps} optimizer steps")
            self.end_round(in_hook=True)

    def passive_thread(self) -> bool:
        t = self.train_thread
        return t is not None and t != threading.get_ident()

    @_ours
    def on_zero_grad(self) -> None:
        """``zero_grad``: a safe point to finish, and, with no optimizer, the end of a round."""
        if self.done or self.passive_thread():
            return
        if self.pending_finish:
            self.finish()
            return
        if not self.round_calls:
            self.zero_grad_first = True  # this round began with a zero_grad: its next one ends it
        elif not self.live_optimizers():
            self.end_round(in_hook=False)

    def bound_hit(self, what: str) -> None:
        missing = [o for o in self.live_optimizers() if id(o) not in self.stepped]
        why = (f"{', '.join(self.opt_name(o) for o in missing)} had not stepped by then" if missing
               else "the script has no optimizer, and no zero_grad came round to end the step")
        self.notes.append(
            f"the captured step was bounded at {what} ({MAX_CALLS} backward calls or {MAX_OPT_STEPS} "
            f"optimizer steps per step): {why}; the report covers the backward calls made so far")

    def opt_name(self, opt: Any) -> str:
        # The name the report gives it (self.opt, opts["g"]), else the frame's, else its class.
        nm = self.known.optimizer_ids.get(id(opt)) if self.known is not None else None
        if nm is None and self.frame is not None:
            nm = name_of(opt, frame_namespaces(self.frame))
        return nm or type(opt).__name__

    # -- rounds ---------------------------------------------------------------------------
    def end_round(self, in_hook: bool) -> None:
        """One round of the optimizers is complete: finish, or go on to the next round."""
        self.round_sites = set()
        self.round_calls = self.round_steps = 0
        self.zero_grad_first = False
        self.stepped = set()
        if self.warmup:
            # The training thread's first round ran before the recorder followed it: keep it
            # only as a fallback and capture the next one with its cuts.
            self.warmup = False
            self.warm, self.calls = self.calls, []
            self.terms.clear()
            self.snapshot = TraceSnapshot()
            self.tr.clear()
            return
        self.rounds += 1
        if self.rounds < self.opts.steps:
            return
        if in_hook and self.opts.keep_running:
            # Inside torch's hook loop: removing hooks now would change the dict it iterates.
            self.pending_finish = True
            return
        self.finish()
        if not self.opts.keep_running:
            self.stop()

    def stop(self) -> None:
        """End the script: raise in this thread, and in the script's thread if that is another."""
        self.stopping = True
        if threading.get_ident() != self.run_thread:
            with self.lock:
                if self.script_running:
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.run_thread),
                                                               ctypes.py_object(_StopCapture))
        raise _StopCapture()

    def script_ended(self) -> None:
        """The script is no longer running: drop a stop still on its way to the script's thread."""
        with self.lock:
            self.script_running = False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.run_thread), None)

    # -- one backward call --------------------------------------------------------------
    def inner_grad(self, tensors: list[Any], run: Callable[[], Any]) -> Any:
        """``autograd.grad(create_graph=True)``: not a loss; kept only should no loss follow."""
        if len(self.inner) < 4:
            frame = user_frame()
            for i, t in enumerate(tensors):
                if isinstance(t, torch.Tensor) and t.grad_fn is not None:
                    self.inner.append(Root(f"grad_output[{len(self.inner)}.{i}]", t, user_location()))
            del frame
        self.depth += 1
        try:
            return run()
        finally:
            self.depth -= 1

    @_ours
    def adopt_thread(self) -> None:
        """The first backward came from a thread the recorder is not on: move the recorder there.

        This round's forward ran unrecorded, so it is a warm-up: the next round is reported.
        """
        from ..record.mode import _Mode

        self.train_thread = threading.get_ident()
        tr = self.tr
        tr._thread = self.train_thread
        tr._modules.clear()
        tr._seq_hi = -1
        mode = _Mode(tr)
        mode.__enter__()
        self.thread_mode = mode
        self.warmup = True
        name = threading.current_thread().name
        self.notes.append(f"the training ran in thread {name!r}: graphprobe followed it there and captured "
                          "its second step (its first ran before the recorder could see its forward)")

    def around(self, tensors: list[Any], retain: Any, run: Callable[[], Any], confirmable: bool = True) -> Any:
        if self.pending_finish:
            self.finish()
            return run()
        if self.train_thread is None:
            if threading.get_ident() != self.tr._thread:
                self.adopt_thread()
            self.train_thread = threading.get_ident()
        self.depth += 1
        try:
            frame = user_frame()
            site = f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else None
            key = (site, frame.f_lasti if frame is not None else None)  # two backwards on one line differ
            if self.round_calls >= MAX_CALLS:
                self.bound_hit(f"{self.round_calls} backward calls")
                self.end_round(in_hook=False)
                if self.done:
                    return run()
            elif (not self.live_optimizers() and not self.zero_grad_first and key in self.round_sites
                  and self.built_after_last(tensors)):
                # No optimizer and no zero_grad: the loop came round to this call again.
                self.end_round(in_hook=False)
                if self.done:
                    return run()
            self.round_sites.add(key)
            self.round_calls += 1
            self.note_call(tensors, site, bool(retain), frame)
            # An earlier backward without retain_graph may have freed nodes this one needs: find
            # them now, since a failing backward frees its own nodes on the way to the failure.
            freed = self.scan_freed(tensors) if any(not c.retain for c in self.calls[:-1]) else []
            # Parameter hooks note which parameters this backward really reaches: the truth for
            # regions the walk can't see inside (checkpoint, torch.compile, custom Functions).
            call = self.calls[-1]
            got: set[int] = set()
            per_root = self.per_root_reach(call, frame) if confirmable and len(call.roots) > 1 else None
            hooks = (self.hook_params(frame, got)
                     if confirmable and (len(call.roots) == 1 or per_root is not None) else None)
            try:
                out = run()
            except RuntimeError as e:
                self.on_error(e, tensors, site, freed)
                raise
            finally:
                for h in hooks or ():
                    h.remove()
            if hooks is not None:
                if len(call.roots) == 1:
                    call.reached = [got]
                elif per_root is not None:
                    # Each root's own reach, within what the real backward reached.
                    call.reached = [s & got for s in per_root]
            with self.tr.paused():
                self.last_seq = _seq_now()
            return out
        finally:
            self.depth -= 1

    def built_after_last(self, tensors: list[Any]) -> bool:
        """Whether this backward's loss was built after the previous backward (a new step).

        A loop over losses (``for l in losses: l.backward(retain_graph=True)``) backwards losses
        that all existed before its first backward: that is one step, not several.
        """
        seqs = [t.grad_fn._sequence_nr() for t in tensors if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        return not seqs or max(seqs) > self.last_seq

    @_ours
    def note_call(self, tensors: list[Any], site: str | None, retain: bool, frame: Any) -> None:
        namespaces = frame_namespaces(frame)
        expr = source_expr(site)
        roots = []
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor) or (t.grad_fn is None and not t.requires_grad):
                continue
            nm = name_of(t, namespaces) or (expr if expr and len(tensors) == 1 else None) or f"loss[{len(self.calls)}.{i}]"
            roots.append(Root(nm, t, site))
        # Named 0-dim terms of the summed loss (loss1, loss2 in tol_loss = loss2 + loss1).
        for k, v in loss_terms(frame, [r.tensor for r in roots]):
            if all(v is not r.tensor for r in self.terms):
                self.terms.append(Root(k, v, site))
        self.calls.append(_Call(site, roots, retain))
        self.frame = frame
        # Names as this backward sees them: by the step's end the script may have rebound them.
        self.call_known = collect_known(frame, registry=self.tr)
        self.known = self.call_known if self.known is None else self.known.merged(self.call_known)
        # Snapshot what belongs to this step now: the next iteration rebinds names and re-records.
        self.snapshot.add(self.tr)
        fns, leaves = frame_tensors(frame)
        for k, nm in fns.items():
            self.fn_names.setdefault(k, nm)
        for k2, v2 in leaves.items():
            self.leaf_names.setdefault(k2, v2)

    @_ours
    def hook_params(self, frame: Any, got: set[int]) -> list[Any]:
        """Hooks on every known parameter that note, in ``got``, the ones a gradient reaches."""
        handles = []
        for pid, p in self.known_params(frame):
            handles.append(p.register_hook(lambda grad, pid=pid: _note(got, pid, grad)))
        return handles

    def known_params(self, frame: Any) -> list[tuple[int, torch.Tensor]]:
        """The trainable leaf parameters this backward's names know (found at the call, else now)."""
        from ..record.names import collect_known

        known = self.call_known if self.call_known is not None else collect_known(frame, registry=self.tr)
        return [(pid, info.tensor) for pid, info in known.params.items()
                if info.tensor.requires_grad and info.tensor.is_leaf]

    def per_root_reach(self, call: _Call, frame: Any) -> list[set[int]] | None:
        """Per root of a multi-root backward, the known parameters a real gradient reaches.

        Only when the graph holds a custom ``autograd.Function``, whose backward may return None
        for an input (a real cut the walk can't see): one ``autograd.grad`` per root, gradients
        returned and dropped (never accumulated into ``.grad``), RNG state restored.
        Complexity: O(V + E) to look for a custom node, then one backward per root.
        """
        from ..walk import iter_fns

        if not any(isinstance(fn, torch.autograd.function.BackwardCFunction)
                   for fn in iter_fns(r.tensor.grad_fn for r in call.roots)):
            return None
        params = self.known_params(frame)
        if not params:
            return None
        tensors = [p for _, p in params]
        out: list[set[int]] = []
        devices = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
        with self.tr.paused(), torch.random.fork_rng(devices=devices):
            for r in call.roots:
                t = r.tensor
                if not t.requires_grad:
                    return None
                try:
                    grads = torch.autograd.grad(t, tensors, None if t.dim() == 0 else torch.ones_like(t),
                                                allow_unused=True, retain_graph=True)
                except RuntimeError:
                    return None
                out.append({pid for (pid, _), g in zip(params, grads) if g is not None})
        return out

    @_ours
    def scan_freed(self, tensors: list[Any]) -> list[Any]:
        """Autograd nodes behind ``tensors`` whose saved tensors are already freed (iterative)."""
        from ..walk import is_freed, iter_fns

        starts = [t.grad_fn for t in tensors if isinstance(t, torch.Tensor)]
        freed = [fn for fn in iter_fns(starts) if is_freed(fn)]
        return freed
    def on_error(self, e: RuntimeError, tensors: list[Any], site: str | None, freed: list[Any]) -> None:
        self.backward_failed = True
        if TWICE in str(e):
            self.freed_fns = freed
        self.errors.append(explain_backward_error(e, tensors, site, freed, self.calls, self.tr))
        self.finish()
    # -- the end of the step ------------------------------------------------------------
    @_ours
    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.pending_finish = False
        if not self.calls and self.warm:
            self.calls = self.warm  # the training thread never finished a second round
            self.notes.append("the training thread ended after one round: cuts made in its forward "
                              "were not recorded (only reachability is reported)")
        self.warm = []
        roots = [r for c in self.calls for r in c.roots]
        if not roots and not self.errors and self.inner:
            roots = list(self.inner)  # only create_graph gradients: report them rather than nothing
        self.inner = []
        if self.opts.progress and roots:  # with none, the error that follows says what happened
            self.opts.progress(f"graphprobe: walking {len(roots)} loss graph(s) from {len(self.calls)} backward call(s)")
        if roots or self.errors:
            confirmed: list[set[int] | None] = []
            for c in self.calls:
                for i in range(len(c.roots)):
                    confirmed.append(c.reached[i] if c.reached is not None else None)
            confirmed += [None] * (len(roots) - len(confirmed))
            self.report = build_report(
                [r.tensor for r in roots], self.frame, names=[r.name for r in roots], trace=self.snapshot,
                check_freed=False, terms=self.terms, locations=[r.location for r in roots],
                freed_fns=self.freed_fns, var_names=(self.fn_names, self.leaf_names),
                confirmed=confirmed, errors=self.errors, unjudged=self.unstepped_params(),
                known=self.known,
            )
            self.report.notes.extend(self.notes)
        # Hold nothing of the user's past this point.
        self.calls.clear()
        self.terms.clear()
        self.freed_fns = []
        self.frame = None
        self.known = self.call_known = None
        self.snapshot = TraceSnapshot()
        self.fn_names, self.leaf_names = {}, {}
        self.tr.clear()
        self.leave_thread()
        if self.opts.keep_running:
            self.uninstall()
            # The recorder's mode sits on the script's thread: only that thread takes it off (on
            # another thread, run_script does when the script ends; it records nothing till then).
            if threading.get_ident() == self.run_thread:
                self.tr.__exit__(None, None, None)

    def leave_thread(self) -> None:
        """Take the recorder's mode off the training thread (when this is that thread)."""
        mode, self.thread_mode = self.thread_mode, None
        if mode is None:
            return
        if threading.get_ident() == self.tr._thread:
            _leave_mode(mode)
        self.tr._thread = -1  # the recorder records no thread from now on

    def unstepped_params(self) -> set[int]:
        """``id()`` of parameters held only by optimizers that never stepped in the window.

        They are not judged (never called unreached); a note says which optimizers and why.
        """
        live = self.live_optimizers()
        unstepped = [o for o in live if id(o) not in self.ever_stepped]
        if not unstepped or not self.ever_stepped:
            return set()  # no optimizer stepped at all (the script's end): nothing to tell them apart by
        stepped_ids = {id(p) for o in live if id(o) in self.ever_stepped for g in o.param_groups for p in g["params"]}
        ids = {id(p) for o in unstepped for g in o.param_groups for p in g["params"]} - stepped_ids
        if ids:
            known = self.known if self.known is not None else collect_known(self.frame, registry=self.tr)
            names = sorted(known.params[i].name for i in ids if i in known.params)
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            self.notes.append(f"{', '.join(self.opt_name(o) for o in unstepped)} did not step in the captured "
                              f"step, so the parameters only {'it holds' if len(unstepped) == 1 else 'they hold'}"
                              f" ({shown or len(ids)}) are not judged")
        return ids

    # -- child processes ------------------------------------------------------------------
    @_ours
    def start_child(self, proc: Any, orig_start: Callable[[Any], None]) -> None:
        """``Process.start``: the child captures its own step and leaves its report in a file."""
        if self.done or not _user_target(getattr(proc, "_target", None)):
            orig_start(proc)  # a DataLoader worker, a Process subclass with its own run()
            return
        if self.child_dir is None:
            self.child_dir = tempfile.mkdtemp(prefix="graphprobe-children-")
        self.children.append(proc)
        n = len(self.children)
        target = proc._target
        proc._target = _ChildTarget(target, os.path.join(self.child_dir, f"child{n}.pkl"),
                                    self.opts.steps, self.opts.keep_running)
        try:
            orig_start(proc)
        finally:
            # start() drops _target once the child has it (Python >= 3.9); put it back if not.
            if isinstance(getattr(proc, "_target", None), _ChildTarget):
                proc._target = target

    @_ours
    def after_join(self) -> None:
        """Every child joined, each with a report, and nothing here to capture: the step is done."""
        if (self.done or self.opts.keep_running or self.calls or not self.children
                or threading.get_ident() != self.run_thread):
            return
        if any(p.exitcode is None for p in self.children):
            return
        if self.child_reports(peek=True):
            self.stopping = True
            raise _StopCapture()

    def child_reports(self, peek: bool = False) -> list[tuple[str, Report]]:
        out: list[tuple[str, Report]] = []
        if self.child_dir is None:
            return out
        for n in range(1, len(self.children) + 1):
            path = os.path.join(self.child_dir, f"child{n}.pkl")
            if not os.path.exists(path):
                continue
            if peek:
                return [("", None)]  # type: ignore[list-item]
            try:
                with open(path, "rb") as fh:
                    out.append((f"child{n}", pickle.load(fh)))
            except (OSError, pickle.PickleError, EOFError):
                continue
        return out

    def cleanup_children(self) -> None:
        if self.child_dir is not None:
            shutil.rmtree(self.child_dir, ignore_errors=True)
            self.child_dir = None


_MISSING = object()


def _zero_grad_wrapper(cap: _Capture, orig: Callable[..., Any]) -> Callable[..., Any]:
    def zero_grad(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not cap.done:
            cap.on_zero_grad()
        return orig(self, *args, **kwargs)

    zero_grad.__wrapped__ = orig  # type: ignore[attr-defined]
    zero_grad.__doc__ = orig.__doc__
    return zero_grad


def _leave_mode(mode: Any) -> None:
    """Take ``mode`` off this thread's torch-function mode stack by identity, others kept."""
    from ..record.modestack import _remove_from_stack

    mode.off = True  # should it linger anywhere, it only forwards
    _remove_from_stack(mode)


def _user_target(target: Any) -> bool:
    """Whether a Process target is the script's own code (or ``mp.spawn``'s wrapper of it)."""
    if target is None or isinstance(target, _ChildTarget):
        return False
    try:
        from torch.multiprocessing import spawn as tmp_spawn

        if target is getattr(tmp_spawn, "_wrap", None):
            return True
    except ImportError:
        pass
    while hasattr(target, "func") and not hasattr(target, "__code__"):  # functools.partial
        target = target.func
    code = getattr(target, "__code__", None) or getattr(getattr(target, "__func__", None), "__code__", None)
    if code is None:
        code = getattr(getattr(type(target), "__call__", None), "__code__", None)
    return code is not None and _is_user_file(code.co_filename)


class _ChildTarget:
    """A child process's target, wrapped: capture the child's first step, report it to a file.

    Picklable (``spawn`` sends it to the child): it holds the user's target, the report's path
    and the options. In a ``fork`` child the parent's capture, copied into the child, comes off
    first.
    """

    def __init__(self, target: Callable[..., Any], path: str, steps: int, keep_running: bool) -> None:
        self.target = target
        self.path = path
        self.steps = steps
        self.keep_running = keep_running

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        parent = _CURRENT
        if parent is not None:  # fork: this process is a copy of the parent, mid-capture
            parent.calls.clear()
            parent.terms.clear()
            parent.warm = []
            parent.uninstall()
            if parent.tr.active:
                parent.tr.__exit__(None, None, None)
        tr = Trace()
        cap = _Capture(RunOptions(script="", steps=self.steps, keep_running=self.keep_running), tr)
        cap.is_child = True
        out = None
        try:
            tr.__enter__()
            cap.install()
            try:
                out = self.target(*args, **kwargs)
            except _StopCapture:
                pass
            cap.script_ended()
            cap.finish()
        except _StopCapture:
            cap.script_ended()
        finally:
            cap.uninstall()
            if tr.active:
                tr.__exit__(None, None, None)
            if cap.report is not None:
                write_atomic(self.path, pickle.dumps(cap.report))
        return out


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, pos: int, default: Any) -> Any:
    """Argument ``name`` of a wrapped call, by keyword or at ``pos`` in ``args``."""
    if name in kwargs:
        return kwargs[name]
    return args[pos] if len(args) > pos else default


def _retain(args: tuple[Any, ...], kwargs: dict[str, Any], retain_pos: int, create_pos: int) -> bool:
    """Whether a backward keeps its graph: ``retain_graph``, which defaults to ``create_graph``."""
    retain = _arg(args, kwargs, "retain_graph", retain_pos, None)
    return bool(retain if retain is not None else _arg(args, kwargs, "create_graph", create_pos, False))


def _materialise(tensors: Any) -> tuple[Any, list[Any]]:
    """``(what to pass on, the tensors)``: an iterator is read once, into a tuple passed on instead."""
    if isinstance(tensors, _ONE_ROOT):
        return tensors, [tensors]
    if not isinstance(tensors, (list, tuple)):
        tensors = tuple(tensors)
    return tensors, list(tensors)


def _note(got: set[int], pid: int, grad: Any) -> None:
    """A parameter hook: an undefined gradient (a custom backward's None) reaches nothing."""
    if grad is not None:
        got.add(pid)
