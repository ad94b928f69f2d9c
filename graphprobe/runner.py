"""Running a user's script under the recorder, capturing its backward calls for one training step.

The script runs as ``__main__`` with its own argv and ``sys.path[0]``, as ``python script.py``
would run it (``runpy.run_path``). ``Tensor.backward``, ``torch.autograd.backward`` and
``torch.autograd.grad`` are wrapped: each call's losses are kept until the step ends, which is
when a backward call site repeats (the loop came round) or the script ends. Then the graph is
walked once for all of them, and the script is stopped, or, with ``keep_running``, left to run
on with every patch removed. Every patch is removed on every exit path.

An error the script raises after its first backward also ends the step: the report is kept and
carries it as a ``script_error``. DDP (``find_unused_parameters=False``) raises "Expected to have
finished reduction in the prior iteration" at the next forward, before the backward call site can
repeat, when a parameter got no gradient: when the report's unreached parameters explain it, the
step simply ended there, and the error becomes a note, the unreached parameters being the finding.
"""
from __future__ import annotations

import linecache
import os
import re
import runpy
import sys
import threading
import tokenize
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .locations import short_location as _short
from .errors import NoBackwardError, ScriptError
from .names import collect_known, frame_namespaces, name_of
from .terms import loss_terms
from .analysis.messages import FIX_FREED
from .model.findings import ScriptError as ScriptErrorFinding
from .probe import build_report, frame_tensors
from .report import Report
from .trace import Trace, TraceSnapshot, _is_user_file, release_modes, user_frame, user_location
from .walk import Root

__all__ = ["RunOptions", "RunResult", "run_script"]

_TWICE = "backward through the graph a second time"
_NO_GRAD = "does not require grad"
_DDP_UNUSED = "Expected to have finished reduction in the prior iteration"
# What backward/grad take as one root rather than a sequence of them (GradientEdge: torch >= 2.2).
_ONE_ROOT: tuple[type, ...] = (torch.Tensor,) + tuple(
    t for t in (getattr(torch.autograd.graph, "GradientEdge", None),) if t is not None)


class _StopCapture(BaseException):
    """Raised inside the script's backward to end the run once the step is captured."""


@dataclass
class RunOptions:
    """What to run and how much of it to capture."""

    script: str
    args: list[str] = field(default_factory=list)
    steps: int = 1
    keep_running: bool = False
    progress: Callable[[str], None] | None = None


@dataclass
class RunResult:
    """The report, whether a backward failed, and how the script ended."""

    report: Report
    backward_failed: bool = False
    script_exit: int | None = None
    stopped_early: bool = False
    interrupted: bool = False  # Ctrl-C after the first backward: the report covers what was captured


@dataclass
class _Call:
    site: str | None
    roots: list[Root]
    retain: bool
    reached: set[int] | None = None  # id() of the parameters the real backward reached


class _Capture:
    def __init__(self, opts: RunOptions, tr: Trace) -> None:
        self.opts = opts
        self.tr = tr
        self.calls: list[_Call] = []
        self.round_sites: set[str | None] = set()
        self.rounds = 0
        self.depth = 0
        self.done = False
        self.report: Report | None = None
        self.errors: list[ScriptErrorFinding] = []
        self.freed_fns: list[Any] = []
        self.frame: Any = None
        self.known: Any = None  # names as each backward of the step saw them, merged (names.Known)
        self.call_known: Any = None  # this backward's
        self.terms: list[Root] = []
        self.snapshot = TraceSnapshot()
        self.fn_names: dict[Any, str] = {}
        self.leaf_names: dict[int, str] = {}
        self.backward_failed = False
        self.patches: list[tuple[Any, str, Any]] = []

    # -- patches ------------------------------------------------------------------------
    def install(self) -> None:
        cap = self
        orig_tb = torch.Tensor.backward
        orig_ab = torch.autograd.backward
        orig_grad = torch.autograd.grad

        # Positions after the first argument: Tensor.backward(gradient, retain_graph, create_graph,
        # inputs); autograd.backward(grad_tensors, retain_graph, create_graph, grad_variables,
        # inputs); autograd.grad(inputs, grad_outputs, retain_graph, create_graph, ...).
        def tensor_backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            return cap.around([self], _retain(args, kwargs, 1, 2),
                              lambda: orig_tb(self, *args, **kwargs),
                              confirmable=_arg(args, kwargs, "inputs", 3, None) is None)

        def autograd_backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            tensors, ts = _materialise(tensors)  # a generator is read once, here, and passed on as a tuple
            return cap.around(ts, _retain(args, kwargs, 1, 2),
                              lambda: orig_ab(tensors, *args, **kwargs),
                              confirmable=_arg(args, kwargs, "inputs", 4, None) is None)

        def autograd_grad(outputs: Any, *args: Any, **kwargs: Any) -> Any:
            # grad() computes only its inputs' gradients: parameter hooks can't confirm anything.
            outputs, ts = _materialise(outputs)
            return cap.around(ts, _retain(args, kwargs, 2, 3),
                              lambda: orig_grad(outputs, *args, **kwargs), confirmable=False)

        for owner, name, new in ((torch.Tensor, "backward", tensor_backward),
                                 (torch.autograd, "backward", autograd_backward),
                                 (torch.autograd, "grad", autograd_grad)):
            self.patches.append((owner, name, getattr(owner, name)))
            new.__wrapped__ = getattr(owner, name)  # type: ignore[attr-defined]  # the recorder knows it by this
            setattr(owner, name, new)

    def uninstall(self) -> None:
        while self.patches:
            owner, name, orig = self.patches.pop()
            setattr(owner, name, orig)

    # -- one backward call --------------------------------------------------------------
    def around(self, tensors: list[Any], retain: Any, run: Callable[[], Any], confirmable: bool = True) -> Any:
        # Another thread's backward (a data loader's, a helper's) is not the step being recorded.
        if self.depth or self.done or not self.tr.active or threading.get_ident() != self.tr._thread:
            return run()
        self.depth += 1
        try:
            site = user_location()
            if site in self.round_sites:
                self.rounds += 1
                self.round_sites = set()
                if self.rounds >= self.opts.steps:
                    self.finish()
                    if not self.opts.keep_running:
                        raise _StopCapture()
                    return run()
            self.round_sites.add(site)
            frame = user_frame()
            self.note_call(tensors, site, bool(retain), frame)
            # An earlier backward without retain_graph may have freed nodes this one needs: find
            # them now, since a failing backward frees its own nodes on the way to the failure.
            freed = self.scan_freed(tensors) if any(not c.retain for c in self.calls[:-1]) else []
            # Parameter hooks note which parameters this backward really reaches: the truth for
            # regions the walk can't see inside (checkpoint, torch.compile, custom Functions).
            got: set[int] = set()
            hooks = self.hook_params(frame, got) if confirmable and len(self.calls[-1].roots) == 1 else None
            try:
                out = run()
            except RuntimeError as e:
                self.on_error(e, tensors, site, freed)
                raise
            finally:
                for h in hooks or ():
                    h.remove()
            if hooks is not None:
                self.calls[-1].reached = got
            return out
        finally:
            self.depth -= 1

    def note_call(self, tensors: list[Any], site: str | None, retain: bool, frame: Any) -> None:
        namespaces = frame_namespaces(frame)
        expr = _source_expr(site)
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
        for k, v in fns.items():
            self.fn_names.setdefault(k, v)
        for k2, v2 in leaves.items():
            self.leaf_names.setdefault(k2, v2)

    def hook_params(self, frame: Any, got: set[int]) -> list[Any]:
        """Hooks on every known parameter that note, in ``got``, the ones a gradient reaches."""
        handles = []
        known = self.call_known if self.call_known is not None else collect_known(frame, registry=self.tr)
        for pid, info in known.params.items():
            p = info.tensor
            if p.requires_grad and p.is_leaf:
                handles.append(p.register_hook(lambda grad, pid=pid: _note(got, pid, grad)))
        return handles

    def scan_freed(self, tensors: list[Any]) -> list[Any]:
        """Autograd nodes behind ``tensors`` whose saved tensors are already freed (iterative)."""
        from .walk import is_freed, iter_fns

        starts = [t.grad_fn for t in tensors if isinstance(t, torch.Tensor)]
        freed = [fn for fn in iter_fns(starts) if is_freed(fn)]
        return freed

    def on_error(self, e: RuntimeError, tensors: list[Any], site: str | None, freed: list[Any]) -> None:
        msg = str(e)
        self.backward_failed = True
        if _TWICE in msg:
            self.errors.append(self.explain_twice(freed, site))
        elif _NO_GRAD in msg:
            self.errors.append(self.explain_no_grad(tensors, site))
        else:
            self.errors.append(ScriptErrorFinding(
                kind="backward_failed", severity="error", location=site,
                message=f"backward at {_short(site)} raised: {msg.splitlines()[0]}"))
        self.finish()

    def explain_twice(self, freed: list[Any], site: str | None) -> ScriptErrorFinding:
        from .walk import iter_fns

        self.freed_fns = freed
        freed_set = set(freed)
        freed_by: dict[str, Any] = {}
        for call in self.calls[:-1]:
            if call.retain:
                continue
            if any(fn in freed_set for fn in iter_fns(r.tensor.grad_fn for r in call.roots)):
                freed_by = {"loss": ", ".join(r.name for r in call.roots), "location": call.site}
                break
        loss = ", ".join(r.name for r in self.calls[-1].roots) if self.calls else "this loss"
        # The message names the freed nodes as the report does: the build writes it
        # (analysis.findings.describe_errors), before the report is frozen.
        return ScriptErrorFinding(kind="backward_twice", severity="error", location=site, freed_by=freed_by,
                                  loss=loss, fix=FIX_FREED)

    def explain_no_grad(self, tensors: list[Any], site: str | None) -> ScriptErrorFinding:
        where = ""
        for t in tensors:
            if isinstance(t, torch.Tensor):
                prov = self.tr._tensor_prov(t)
                if prov is not None:
                    chain = " → ".join(op for op, _ in prov.chain)
                    where = f"; the chain was cut at {_short(prov.location)} ({prov.kind}: {chain})"
                    break
        return ScriptErrorFinding(
            kind="no_grad_root", severity="error", location=site,
            message=(f"backward at {_short(site)} failed: the loss does not require grad, so nothing "
                     f"upstream can be trained{where or '; it was computed under no_grad or from detached data'}"),
            fix="compute the loss with grad enabled and without .detach()/.numpy()/.item() on the way")

    # -- the end of the step ------------------------------------------------------------
    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        roots = [r for c in self.calls for r in c.roots]
        if self.opts.progress and roots:  # with none, the error that follows says what happened
            self.opts.progress(f"graphprobe: walking {len(roots)} loss graph(s) from {len(self.calls)} backward call(s)")
        if roots or self.errors:
            self.report = build_report(
                [r.tensor for r in roots], self.frame, names=[r.name for r in roots], trace=self.snapshot,
                check_freed=False, terms=self.terms, locations=[r.location for r in roots],
                freed_fns=self.freed_fns, var_names=(self.fn_names, self.leaf_names),
                confirmed=[c.reached if len(c.roots) == 1 else None for c in self.calls for _ in c.roots],
                errors=self.errors,
                known=self.known,
            )
        # Hold nothing of the user's past this point.
        self.calls.clear()
        self.terms.clear()
        self.freed_fns = []
        self.frame = None
        self.known = self.call_known = None
        self.snapshot = TraceSnapshot()
        self.fn_names, self.leaf_names = {}, {}
        self.tr.clear()
        if self.opts.keep_running:
            self.uninstall()
            self.tr.__exit__(None, None, None)


def _source_expr(site: str | None) -> str | None:
    """``(loss1 + loss2)`` from a line ``(loss1 + loss2).backward()``."""
    if not site:
        return None
    path, _, line = site.rpartition(":")
    try:
        text = linecache.getline(path, int(line)).strip()
    except ValueError:
        return None
    m = re.match(r"^(.*?)\.backward\s*\(", text)
    return m.group(1).strip() if m else None


def _user_traceback(exc: BaseException, script: str) -> str:
    """The script's own frames of a traceback, as ``file:line: code`` lines."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_file(f.filename)]
    last = frames[-3:]
    return "\n".join(f"  {os.path.basename(f.filename)}:{f.lineno}: {(f.line or '').strip()}" for f in last)


def run_script(opts: RunOptions) -> RunResult:
    """Run ``opts.script`` under the recorder and return the report of its first step(s).

    Raises
    ------
    ScriptError
        The script is missing, has a syntax error, or raised (or exited with a non-zero status)
        before its first backward.
    KeyboardInterrupt
        Ctrl-C before the first backward (after it, the result is returned with ``interrupted``).
    NoBackwardError
        The script ended without calling backward.
    """
    script = opts.script
    if not os.path.isfile(script):
        raise ScriptError(f"graphprobe: no such script: {script}. Give the path of a Python file, "
                          f"e.g. graphprobe render train.py -o graph.svg")
    try:
        with open(script, "rb") as fh:
            data = fh.read()
        compile(data, script, "exec")
        with tokenize.open(script) as fh:
            lines = fh.readlines()
    except SyntaxError as e:
        raise ScriptError(f"graphprobe: {os.path.basename(script)} has a syntax error at line {e.lineno}: "
                          f"{e.msg}. Fix the script so that `python {script}` runs, then try again.") from None
    except (OSError, ValueError) as e:
        raise ScriptError(f"graphprobe: cannot read {script}: {e}") from None

    # The script runs by the path it was given, so locations stay as the user wrote them
    # (samples/cor.py:17). A relative path no longer resolves once the script changes directory:
    # its lines are put in linecache under that path, for `# graphprobe: ignore` and tracebacks.
    old_cwd = os.getcwd()
    cached: tuple[Any, ...] | None = None
    if not os.path.isabs(script):
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        cached = (len(data), None, lines, os.path.abspath(script))  # mtime None: checkcache keeps it
        linecache.cache[script] = cached
    old_argv = sys.argv
    sys.argv = [script, *opts.args]
    path_entry = os.path.dirname(os.path.abspath(script))
    sys.path.insert(0, path_entry)
    tr = Trace()
    tr.from_start = True  # so every optimizer the script builds is seen: names.py needs no gc search
    cap = _Capture(opts, tr)
    result_exit: int | None = None
    exit_msg: str | None = None
    stopped = interrupted = False
    failure: BaseException | None = None
    try:
        tr.__enter__()
        cap.install()
        try:
            runpy.run_path(script, run_name="__main__")
        except _StopCapture:
            stopped = True
        except SystemExit as e:
            code = e.code
            result_exit = code if isinstance(code, int) else (0 if code is None else 1)
            exit_msg = None if code is None or isinstance(code, int) else str(code)
        except KeyboardInterrupt:
            if not cap.calls and cap.report is None:
                raise
            interrupted = True  # the backward calls so far are still reported
        except Exception as e:  # the script's own error
            failure = e
        cap.finish()
    finally:
        cap.uninstall()
        if tr.active:
            tr.__exit__(None, None, None)
        release_modes()  # a mode left inside its own handler (keep_running) is swept now
        sys.argv = old_argv
        for i, entry in enumerate(sys.path):
            if entry is path_entry:
                del sys.path[i]
                break
        try:
            os.chdir(old_cwd)
        except OSError:
            pass
        if cached is not None and linecache.cache.get(script) is cached:
            del linecache.cache[script]
    if cap.report is None:
        base = os.path.basename(script)
        if interrupted:
            raise KeyboardInterrupt
        if failure is not None:
            raise ScriptError(
                f"graphprobe: {base} raised {type(failure).__name__} before its first "
                f"backward: {failure}\n{_user_traceback(failure, script)}\n"
                "Fix the script so that `python " + script + "` runs, then try again."
            ) from None
        if result_exit:
            raise ScriptError(
                f"graphprobe: {base} exited with status {result_exit} before its first backward"
                f"{': ' + exit_msg if exit_msg else ''}. Check that `python {script}"
                f"{''.join(' ' + a for a in opts.args)}` runs (graphprobe keeps its own options, "
                "such as -o and --steps, wherever they appear: pass the script's after --)."
            )
        raise NoBackwardError(
            f"graphprobe: {base} ran to its end without calling backward(), "
            "torch.autograd.backward() or torch.autograd.grad(), so there was no graph to capture. "
            "Run a script that takes at least one training step."
        )
    report = cap.report
    if failure is not None and not cap.backward_failed and _ddp_unused_explained(failure, report):
        stopped, failure = True, None
    if failure is not None and not cap.backward_failed:
        report.add_error(ScriptErrorFinding(
            kind="script_error", severity="error",
            message=f"the script raised {type(failure).__name__} after its first backward: {failure}"))
    if interrupted:
        report.notes.append("interrupted (Ctrl-C): the report covers the backward calls made before it")
    return RunResult(report, backward_failed=cap.backward_failed, script_exit=result_exit, stopped_early=stopped,
                     interrupted=interrupted)


def _ddp_unused_explained(exc: BaseException, report: Report) -> bool:
    """DDP's unused-parameter error, raised at the next forward, explained by unreached parameters.

    Then the step ended where graphprobe would have stopped the script: note the error and
    leave the unreached parameters (with their optimizers) as the finding.
    """
    if _DDP_UNUSED not in str(exc):
        return False
    unreached = [d["name"] for d in report.detached if d["kind"] == "unreached"]
    if not unreached:
        return False
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_file(f.filename)]
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    names = ", ".join(unreached[:4]) + (f" and {len(unreached) - 4} more" if len(unreached) > 4 else "")
    text = (f"DistributedDataParallel raised at the next forward{where} (\"{_DDP_UNUSED}\") because "
            f"{names} got no gradient; the step was complete, so graphprobe ended it there")
    report.notes.append(text)
    report.add_error(ScriptErrorFinding(kind="ddp_unused", severity="info", message=text,
                                        fix="see the unreached parameters above: connect them to a loss"))
    return True


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
