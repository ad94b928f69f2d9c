"""Torch's function-mode stack, handled by identity: graphprobe's mode comes off wherever it is.

A mode is never popped blindly: a user's own ``TorchFunctionMode`` may sit above or below ours.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .mode import _COMPILER, _Mode

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
