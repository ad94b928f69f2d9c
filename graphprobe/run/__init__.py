"""Running a user's script under the recorder, capturing its backward calls for one training step.

The script runs as ``__main__`` with its own argv and ``sys.path[0]``, as ``python script.py``
would run it (``runpy.run_path``). ``Tensor.backward``, ``torch.autograd.backward`` and
``torch.autograd.grad`` are wrapped, and so are the optimizers: torch's global optimizer step
hooks see every ``step()``, and ``Optimizer.__init__`` is observed so the runner knows every
optimizer the script built.

**The step** is one round of the script's optimizers: it starts at the first backward and ends
when every optimizer the script built has stepped at least once since (a GAN's D and G steps,
WGAN's ``n_critic`` D steps and then its G step, an ensemble's optimizers in turn, LBFGS's
``step(closure)``). Every user backward and ``autograd.grad`` in that window belongs to it. A
round is bounded (:data:`MAX_CALLS` backward calls, :data:`MAX_OPT_STEPS` optimizer steps); when
the bound is hit the report says so, and parameters whose optimizers never stepped in the
window are not judged (never called unreached). Scripts without an optimizer (updating
``p.data`` by hand) end the step, in this order, at ``Module.zero_grad``, when a backward call
site repeats with a loss built after the previous backward (so a loop over losses stays one
step), or at the end of the script.

**Not losses:** backward/grad calls made by torch itself (aot_autograd compiling a
``torch.compile`` region, functorch, ``autograd.functional.jacobian``, checkpoint recomputation)
and ``autograd.grad(..., create_graph=True)`` (a gradient penalty, a PINN derivative, a MAML
inner step: part of the graph the real loss is built from). Inside ``optimizer.step(closure)``
the first evaluation of the closure is recorded (cuts included); LBFGS's re-evaluations are not.

**Threads and processes:** the step is captured from the first thread that calls backward; when
that is not the thread the recorder started on, the recorder moves to it and the thread's first
round is a warm-up (its forward ran unrecorded), the second is reported. Children started with
``multiprocessing`` (fork or spawn, ``torch.multiprocessing`` hogwild, ``mp.spawn``) capture
their own first step and report it, one report per child.

Once the step is captured the walk runs once for all its losses, and the script is stopped, or,
with ``keep_running``, left to run on with every patch removed. Stopping unwinds the script: its
``finally:`` blocks run, but ``torch.save`` calls made while it unwinds are skipped and the
``atexit`` handlers it registered are not run, so a 1-step model never overwrites a checkpoint.
Every patch is removed on every exit path, by identity.

An error the script raises after its first backward also ends the step: the report is kept and
carries it as a ``script_error``. DDP (``find_unused_parameters=False``) raises "Expected to have
finished reduction in the prior iteration" at the next forward when a parameter got no
gradient: when the report's unreached parameters explain it, the step simply ended there, and
the error becomes a note, the unreached parameters being the finding.

The modules, in the order a run goes through them: :mod:`.options` (what to run, what came of
it), :mod:`.script` (hosting the script as ``__main__``), :mod:`.capture` (intercepting backward,
the optimizers, threads and child processes) and :mod:`.diagnose` (what a failed backward or a
DDP error means, written before the report is frozen).
"""
from __future__ import annotations

from .options import RunOptions, RunResult
from .script import run_script

__all__ = ["RunOptions", "RunResult", "run_script"]
