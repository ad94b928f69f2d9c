"""The walk: ``grad_fn`` chains -> :class:`ProbeGraph`, iterative, each node visited once.

Roots are the losses (and any extra autograd nodes the recorder names, such as the node before a
cut). Ids are handed out in visit order, so the same program gives the same ids. Autograd nodes
are held in a local dict only while walking; what the graph keeps is strings and numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .graph import ProbeGraph, TensorMeta
from .names import Known

__all__ = ["Root", "CutSides", "WalkResult", "walk", "is_freed", "opaque_kind"]

_SAVED_ATTRS: dict[type, tuple[str, ...]] = {}
_OPAQUE_CACHE: dict[type, str | None] = {}


def opaque_kind(fn: Any) -> str | None:
    """What graphprobe can't see inside: ``checkpoint``, ``compiled``, ``custom`` or None.

    A reentrant ``torch.utils.checkpoint`` hides the parameters it uses behind
    ``CheckpointFunctionBackward``; ``torch.compile`` wraps its region in
    ``CompiledFunctionBackward``; a custom ``autograd.Function`` may return None for an input, so
    its structure can over-state what is reached. Complexity: O(1) (cached per type).
    """
    t = type(fn)
    if t in _OPAQUE_CACHE:
        return _OPAQUE_CACHE[t]
    name = t.__name__
    kind: str | None = None
    if name == "CheckpointFunctionBackward":
        kind = "checkpoint"
    elif name == "CompiledFunctionBackward":
        kind = "compiled"
    elif isinstance(fn, torch.autograd.function.BackwardCFunction):
        kind = "custom"
    _OPAQUE_CACHE[t] = kind
    return kind
_FREED_TEXT = "backward through the graph a second time"


def _saved_tensor_attrs(fn: Any) -> tuple[str, ...]:
    t = type(fn)
    attrs = _SAVED_ATTRS.get(t)
    if attrs is None:
        attrs = tuple(a for a in dir(t) if a.startswith("_saved_"))
        _SAVED_ATTRS[t] = attrs
    return attrs


def is_freed(fn: Any) -> bool:
    """True when reading one of ``fn``'s saved tensors raises because a backward freed it.

    Complexity: O(k) attribute reads for the k ``_saved_*`` attributes of the node's type,
    stopping at the first saved tensor.
    """
    for a in _saved_tensor_attrs(fn):
        try:
            v = getattr(fn, a)
        except RuntimeError as e:
            return _FREED_TEXT in str(e)
        except Exception:
            continue
        if isinstance(v, torch.Tensor) or (isinstance(v, (tuple, list)) and v and isinstance(v[0], torch.Tensor)):
            return False
    return False


@dataclass
class Root:
    """A loss to walk from: its name, its tensor, and where it was made if known."""

    name: str
    tensor: Any
    location: str | None = None
    composite: bool = False


@dataclass
class WalkResult:
    """The graph, and the maps the recorder's cuts need (dropped after probing)."""

    graph: ProbeGraph
    fn_node: dict[Any, int] = field(default_factory=dict)
    leaf_node: dict[int, int] = field(default_factory=dict)  # id(leaf tensor) -> node


def _module_tag(fn: Any, known: Known) -> str | None:
    try:
        md = fn.metadata
    except Exception:
        return None
    mod = md.get("graphprobe_module") if md else None
    return known.module_path(mod) if mod is not None else None


@dataclass
class CutSides:
    """The autograd nodes on either side of one recorded cut, as the walk needs them."""

    source_fns: Sequence[Any]
    target_fns: Sequence[Any] = ()
    target_leaf_ids: Sequence[int] = ()


def walk(roots: Sequence[Root], known: Known, *, cuts: Sequence[CutSides] = (),
         var_names: dict[Any, str] | None = None, reentry_ids: set[int] | None = None,
         plain_leaf_ids: set[int] | None = None, check_freed: bool = True,
         terms: Sequence[Root] = ()) -> WalkResult:
    """Walk from every root's ``grad_fn`` to the leaves.

    Parameters
    ----------
    roots : sequence of Root
        The losses. Each becomes a ``loss`` node fed by its ``grad_fn``.
    known : Known
        Parameters, modules and optimizers found by name.
    cuts : sequence of CutSides
        Recorded cuts. When a cut's target is in the graph, the nodes before the cut are walked
        too (repeatedly, so a chain of cuts is followed); a cut whose downstream side no loss
        reads is left out.
    var_names : dict
        ``grad_fn -> variable name`` for intermediate tensors in the caller's frame.
    reentry_ids, plain_leaf_ids : set of int
        ``id()`` of leaf tensors the recorder saw re-enter autograd, or made on purpose.
    check_freed : bool
        Read one saved tensor per node to find nodes an earlier backward freed.
    terms : sequence of Root
        Named terms of a summed loss (``loss1`` in ``loss1 + loss2``): each becomes a loss node
        only when its ``grad_fn`` is already in the roots' graph, and the roots that hold a term
        are marked composite.

    Returns
    -------
    WalkResult

    Notes
    -----
    Complexity: O(V + E) with an explicit stack; no recursion, so depth is unbounded.
    """
    g = ProbeGraph()
    fn_node: dict[Any, int] = {}
    leaf_node: dict[int, int] = {}
    var_names = var_names or {}
    reentry_ids = reentry_ids or set()
    plain_leaf_ids = plain_leaf_ids or set()
    known_params = known.params
    add_node = g.add_node
    src, dst = g.src, g.dst
    freed = g.freed
    stack: list[Any] = []

    def new_fn_node(fn: Any) -> int:
        variable = getattr(fn, "variable", None) if type(fn).__name__ == "AccumulateGrad" else None
        if variable is not None:
            info = known_params.get(id(variable))
            if info is not None:
                nid = add_node("param", info.name, "AccumulateGrad", info.module, info.name)
                g.param_order[nid] = info.order
                if info.optimizers:
                    g.optimizers[nid] = list(info.optimizers)
            elif id(variable) in plain_leaf_ids:
                nid = add_node("leaf", "leaf", "AccumulateGrad", None, None)
            elif isinstance(variable, torch.nn.Parameter) and id(variable) not in reentry_ids:
                nid = add_node("param", "Parameter", "AccumulateGrad", None, None)
            else:
                nid = add_node("reentry_leaf", "leaf (requires_grad)", "AccumulateGrad", None, None)
            g.meta[nid] = TensorMeta.of(variable)
            leaf_node[id(variable)] = nid
        else:
            op = type(fn).__name__
            var = var_names.get(fn)
            nid = add_node("op", op, op, _module_tag(fn, known), var)
            if check_freed and is_freed(fn):
                freed.add(nid)
            ok = opaque_kind(fn)
            if ok is not None:
                g.opaque[nid] = ok
        fn_node[fn] = nid
        return nid

    def visit(fn: Any) -> int:
        nid = fn_node.get(fn)
        if nid is None:
            nid = new_fn_node(fn)
            stack.append(fn)
        return nid

    for root in roots:
        t = root.tensor
        lid = add_node("loss", root.name, None, None, root.name)
        g.losses.append(lid)
        g.meta[lid] = TensorMeta.of(t)
        if root.location:
            g.location[lid] = root.location
        if root.composite:
            g.composite.add(lid)
        fn = t.grad_fn
        if fn is None:
            # A leaf that requires grad used as a loss: it reaches only itself.
            if t.requires_grad:
                info = known_params.get(id(t))
                pid = leaf_node.get(id(t))
                if pid is None:
                    pid = add_node("param" if info else "leaf", info.name if info else "leaf",
                                   "AccumulateGrad", info.module if info else None,
                                   info.name if info else None)
                    g.meta[pid] = TensorMeta.of(t)
                    leaf_node[id(t)] = pid
                src.append(pid)
                dst.append(lid)
            continue
        src.append(visit(fn))
        dst.append(lid)
        _drain(stack, fn_node, visit, src, dst)
    if terms:
        _attach_terms(g, terms, fn_node)
    pending = list(cuts)
    grew = True
    while pending and grew:
        grew = False
        rest = []
        for c in pending:
            live = any(fn is not None and fn in fn_node for fn in c.target_fns) or \
                any(i in leaf_node for i in c.target_leaf_ids)
            if not live:
                rest.append(c)
                continue
            grew = True
            for fn in c.source_fns:
                if fn is not None:
                    visit(fn)
                    _drain(stack, fn_node, visit, src, dst)
        pending = rest
    # Module tags where the recorder gave none: the module of the parameters an op reads directly.
    if any(m is None for m in g.module):
        _infer_modules(g)
    return WalkResult(g, fn_node, leaf_node)


def _attach_terms(g: ProbeGraph, terms: Sequence[Root], fn_node: dict[Any, int]) -> None:
    for term in terms:
        nid = fn_node.get(term.tensor.grad_fn)
        if nid is None:
            continue
        lid = g.add_node("loss", term.name, None, None, term.name)
        g.losses.append(lid)
        g.meta[lid] = TensorMeta.of(term.tensor)
        if term.location:
            g.location[lid] = term.location
        g.src.append(nid)
        g.dst.append(lid)
        g.terms.add(lid)


def _drain(stack: list[Any], fn_node: dict[Any, int], visit: Any, src: list[int], dst: list[int]) -> None:
    while stack:
        fn = stack.pop()
        me = fn_node[fn]
        for nxt, _ in fn.next_functions:
            if nxt is not None:
                src.append(visit(nxt))
                dst.append(me)


def _infer_modules(g: ProbeGraph) -> None:
    """Tag an op with the module of the parameters it reads directly, when that is one module."""
    kinds, mods = g.kind, g.module
    cand: dict[int, str | None] = {}
    for s, d in zip(g.src, g.dst):
        if kinds[d] == "op" and mods[d] is None and kinds[s] == "param" and mods[s] is not None:
            prev = cand.get(d, mods[s])
            cand[d] = mods[s] if prev == mods[s] else None
    for d, m in cand.items():
        if m is not None:
            mods[d] = m
