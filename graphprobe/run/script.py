"""Hosting the script: run it as ``__main__``, as ``python script.py`` would, under the capture."""
from __future__ import annotations

import atexit
import linecache
import os
import runpy
import sys
import threading
import tokenize
from typing import Any

from ..errors import NoBackwardError, ScriptError, _GraphprobeBug
from ..model.findings import ScriptError as ScriptErrorFinding
from ..record.modestack import release_modes
from ..record.recorder import Trace
from .capture import _Capture, _StopCapture
from .diagnose import ddp_unused_explained, user_traceback
from .options import RunOptions, RunResult

__all__ = ["run_script"]


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
    threads_before = set(threading.enumerate())
    bug: _GraphprobeBug | None = None
    try:
        tr.__enter__()
        cap.install()
        try:
            try:
                runpy.run_path(script, run_name="__main__")
            except _StopCapture:
                stopped = True
            except SystemExit as e:
                code = e.code
                result_exit = code if isinstance(code, int) else (0 if code is None else 1)
                exit_msg = None if code is None or isinstance(code, int) else str(code)
            except KeyboardInterrupt:
                if not cap.calls and cap.report is None and not cap.warm:
                    raise
                interrupted = True  # the backward calls so far are still reported
            except Exception as e:  # the script's own error
                failure = e
            cap.script_ended()
        except _StopCapture:  # a training thread's stop, arriving just as the script ended
            stopped = True
            cap.script_ended()
        cap.finish()
    except _GraphprobeBug as e:
        bug = e
    finally:
        cap.script_ended()
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
    children = cap.child_reports()
    cap.cleanup_children()
    if bug is not None:
        # graphprobe's own crash, not the script's: the CLI says so (exit 70).
        raise bug.__cause__ if bug.__cause__ is not None else RuntimeError(str(bug))
    left = [t.name for t in threading.enumerate()
            if t not in threads_before and t.is_alive() and not t.daemon] if stopped else []
    if stopped:
        _after_stop(cap, opts, left)
    if cap.report is None and children:
        # The training ran in child processes only: the first child's step is this run's report.
        cap.report = children[0][1]
        cap.report.notes.append(
            f"the script trained in {len(cap.children)} child process{'es' if len(cap.children) != 1 else ''} "
            f"and called no backward in its own; {len(children)} captured a step, each written as its own "
            "report (.child<N> before the extension); this is child1's")
    if cap.report is None:
        base = os.path.basename(script)
        if interrupted:
            raise KeyboardInterrupt
        if cap.children and failure is None and not result_exit:
            codes = ", ".join(str(p.exitcode) for p in cap.children)
            raise NoBackwardError(
                f"graphprobe: {base} called no backward in its own process, and none of its "
                f"{len(cap.children)} child process(es) captured a step (exit codes {codes}): a child "
                "started with a Process subclass that overrides run(), or one that failed before its "
                "first backward, is not recorded. Run the training in the main process to see its graph."
            )
        if failure is not None:
            raise ScriptError(
                f"graphprobe: {base} raised {type(failure).__name__} before its first "
                f"backward: {failure}\n{user_traceback(failure, script)}\n"
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
    if failure is not None and not cap.backward_failed and ddp_unused_explained(failure, report):
        stopped, failure = True, None
    if failure is not None and not cap.backward_failed:
        report.add_error(ScriptErrorFinding(
            kind="script_error", severity="error",
            message=f"the script raised {type(failure).__name__} after its first backward: {failure}"))
    if interrupted:
        report.notes.append("interrupted (Ctrl-C): the report covers the backward calls made before it")
    return RunResult(report, backward_failed=cap.backward_failed, script_exit=result_exit, stopped_early=stopped,
                     interrupted=interrupted, children=children, left_threads=left)


def _after_stop(cap: _Capture, opts: RunOptions, left: list[str]) -> None:
    """Once the capture stopped the script: drop its atexit handlers, say what was skipped.

    The script's ``finally:`` blocks have run (they close files and process groups); a
    ``torch.save`` in one was skipped, and so are the ``atexit`` handlers it registered: a model
    trained for one step must not overwrite the user's checkpoint.
    """
    for func in cap.user_atexit:
        atexit.unregister(func)
    parts = []
    if cap.skipped_saves:
        parts.append(f"skipped {len(cap.skipped_saves)} torch.save ({', '.join(cap.skipped_saves[:3])})")
    if cap.user_atexit:
        parts.append(f"skipped {len(cap.user_atexit)} atexit handler(s) of the script")
    if left:
        parts.append(f"left thread(s) {', '.join(left)} running (graphprobe exits without waiting for them)")
    if opts.progress and parts:
        opts.progress("graphprobe: stopped the script after the captured step; its finally: blocks ran, "
                      + "; ".join(parts) + " (--keep-running lets it run to its end)")
    cap.user_atexit = []
