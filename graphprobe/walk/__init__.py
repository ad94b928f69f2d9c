"""The walk: ``grad_fn`` chains -> :class:`graphprobe.model.graph.ProbeGraph`.

:mod:`.walker` walks (iteratively, each node once); :mod:`.stack` holds the walk's one side
effect on the process (the stack limit torch needs to free what was walked).
"""
from __future__ import annotations

from .stack import ensure_stack_for_free
from .walker import CutSides, Root, WalkResult, is_freed, iter_fns, opaque_kind, walk

__all__ = ["Root", "CutSides", "WalkResult", "walk", "iter_fns", "is_freed", "opaque_kind", "ensure_stack_for_free"]
