"""Named terms of a loss: which named scalars of the frame are parts of the sum being backwarded.

``loss1`` and ``loss2`` in ``total = loss1 + 0.5 * loss2; total.backward()`` are, and get
columns of their own in the report; a loop variable (``for log_prob in ...``), one step's value
left over from a finished loop, a factor (``-log_prob * R``), an element of a stacked or
concatenated list, and a scalar the loss does not contain are not.
"""
from __future__ import annotations

import types
from typing import Any, Sequence

import torch

from .names import frame_namespaces
from .scopes import loop_spans

__all__ = ["loss_terms"]

# Nodes through which a named tensor stays a term of the sum being backwarded: additions,
# subtractions, negation and scaling (a product or quotient with one side that needs no grad,
# as in 0.5 * kl). A stack, cat, sum or mean gathers many values (a loop's log_probs) and a
# product of two graphs mixes them: the walk stops there.
_ADDITIVE = frozenset({"AddBackward0", "AddBackward1", "SubBackward0", "SubBackward1", "RsubBackward0",
                       "RsubBackward1", "NegBackward0"})
_SCALING = frozenset({"MulBackward0", "MulBackward1", "DivBackward0", "DivBackward1"})
_MAX_SPINE = 10_000


def _spine(roots: Sequence[torch.Tensor]) -> set[Any]:
    """Autograd nodes below the roots reached through additive nodes only (iterative).

    Notes
    -----
    Complexity: O(nodes on the additive spine), at most ``_MAX_SPINE``.
    """
    out: set[Any] = set()
    stack = [r.grad_fn for r in roots if isinstance(r, torch.Tensor) and r.grad_fn is not None]
    starts = set(stack)
    while stack and len(out) < _MAX_SPINE:
        fn = stack.pop()
        if fn in out:
            continue
        out.add(fn)
        name = type(fn).__name__
        nxt = [n for n, _ in fn.next_functions if n is not None]
        if name in _ADDITIVE or (name in _SCALING and len(nxt) == 1):
            stack.extend(nxt)
    return out - starts


def _finished_loop_names(frame: types.FrameType) -> set[str]:
    """Names the frame's function binds only inside loops that don't enclose the current line.

    After such a loop, the name holds the last iteration's value (one step's ``log_prob``, the
    last chunk's loss): a value among many, not a term of the loss. Empty when the source can't
    be read.
    """
    bindings = loop_spans(frame.f_code)
    if bindings is None:
        return set()
    line = frame.f_lineno
    return {name for name, spans in bindings.items()
            if spans and all(s is not None and not (s[0] <= line <= s[1]) for s in spans)}


def loss_terms(frame: types.FrameType | None, roots: Sequence[torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """Named 0-dim tensors of the frame that are terms of the sum being backwarded.

    ``loss1`` and ``loss2`` in ``total = loss1 + 0.5 * loss2; total.backward()`` are; a loop
    variable (``for log_prob in ...``), one step's value left over from a finished loop, a
    factor (``-log_prob * R``), an element of a stacked or concatenated list, and a scalar that
    the loss does not contain are not.

    Notes
    -----
    Complexity: O(nodes on the additive spine + the frame's locals), plus one parse of the
    frame's source file (cached).
    """
    if frame is None:
        return []
    spine = _spine(roots)
    if not spine:
        return []
    ids = {id(t) for t in roots}
    ns = frame_namespaces(frame)[0]
    out: list[tuple[str, torch.Tensor]] = []
    loop_names: set[str] | None = None
    for k, v in list(ns.items()):
        if (isinstance(v, torch.Tensor) and not k.startswith("_") and id(v) not in ids
                and v.grad_fn is not None and v.grad_fn in spine and v.dim() == 0):
            if loop_names is None:
                loop_names = _finished_loop_names(frame)
            if k not in loop_names:
                out.append((k, v))
    return out
