"""The walk's one side effect, kept alone: the C stack that torch needs to free a walked graph.

Anything that lets Python see autograd nodes (the walk, the recorder tagging nodes with their
module) calls :func:`ensure_stack_for_free`.
"""
from __future__ import annotations

import os

__all__ = ["ensure_stack_for_free"]

_STACK_PER_NODE = 256  # bytes of C stack torch needs per node to free a walked chain


def ensure_stack_for_free(n_nodes: int) -> None:
    """Raise the main thread's soft stack limit so torch can free a walked graph of ``n_nodes``.

    Why: once Python has seen an autograd node (any ``next_functions`` walk does), torch 2.13
    frees that node through its Python wrapper, recursively, instead of with its iterative
    deleter. Freeing a walked chain of ~80,000 nodes then overflows the default 8 MiB stack and
    the user's process dies with a segfault when the graph goes out of scope. Linux grows the
    main thread's stack up to the *current* soft limit, so raising it (never lowering it, never
    past the hard limit, at most 512 MiB) makes the later free safe.

    What else it changes: this process's threads keep the stack size glibc gave them at
    start-up, but processes started afterwards (subprocesses, spawned DataLoader workers)
    inherit the raised soft limit and size their own threads' stacks from it (virtual address
    space, not memory). Set ``GRAPHPROBE_NO_STACK_RAISE=1`` to leave the limit alone.
    Complexity: O(1).
    """
    if n_nodes < 20_000 or os.environ.get("GRAPHPROBE_NO_STACK_RAISE"):
        return
    try:
        import resource
    except ImportError:  # not on Linux/macOS: nothing to do
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    need = min(_STACK_PER_NODE * n_nodes + (16 << 20), 512 << 20)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    new = need if hard == resource.RLIM_INFINITY else min(hard, need)
    if new > soft:
        try:
            resource.setrlimit(resource.RLIMIT_STACK, (new, hard))
        except (ValueError, OSError):
            pass
