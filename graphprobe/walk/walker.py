"""The walk: ``grad_fn`` chains -> :class:`ProbeGraph`, iterative, each node visited once.

Roots are the losses (and any extra autograd nodes the recorder names, such as the node before a
cut). Ids are handed out in visit order, so the same program gives the same ids. Autograd nodes
are held in a local dict only while walking; what the graph keeps is strings and numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence, cast

import torch

from ..model.graph import ProbeGraph, TensorMeta
from ..model.known import Known
from .stack import ensure_stack_for_free

__all__ = ["Root", "CutSides", "WalkResult", "walk", "iter_fns", "is_freed", "opaque_kind"]

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


def _raw_saved_attrs(fn: Any) -> tuple[str, ...]:
    t = type(fn)
    attrs = _SAVED_ATTRS.get(t)
    if attrs is None:
        attrs = tuple(a for a in dir(t) if a.startswith("_raw_saved_"))
        _SAVED_ATTRS[t] = attrs
    return attrs


def is_freed(fn: Any) -> bool:
    """True when an earlier backward freed ``fn``'s saved tensors.

    Reads the *raw* saved slots (``_raw_saved_*``), which never run a saved-tensor unpack hook:
    reading ``_saved_*`` would, and under ``torch.utils.checkpoint`` that re-runs the user's
    forward (BatchNorm statistics included). A live slot holds data (a tensor, or whatever a
    pack hook made); a freed one holds None. When every slot is empty, the node was freed or
    never saved anything, and the plain read, with nothing packed to unpack, tells which.

    Complexity: O(k) for the k saved slots of the node's type.
    """
    attrs = _raw_saved_attrs(fn)
    if not attrs:
        return False
    for a in attrs:
        try:
            r = getattr(fn, a)
        except RuntimeError as e:
            return _FREED_TEXT in str(e)
        except Exception:
            continue
        if isinstance(r, (list, tuple)):
            r = r[0] if r else None
        if r is not None and getattr(r, "data", None) is not None:
            return False
    for a in attrs:
        try:
            getattr(fn, "_saved_" + a[len("_raw_saved_"):])
        except RuntimeError as e:
            if _FREED_TEXT in str(e):
                return True
        except Exception:
            continue
    return False


#: What a live ``_raw_saved_*`` slot reads as; finish_freed's shortcut (None on a torch without it).
_SAVED_TENSOR: Any = getattr(getattr(torch._C, "_autograd", None), "SavedTensor", None)


def iter_fns(starts: Iterable[Any]) -> Iterator[Any]:
    """Every autograd node reachable from ``starts`` (None skipped), each once, iteratively.

    Complexity: O(V + E); no recursion. For the runner's quick questions (which nodes are
    freed, does this earlier backward's graph hold one of them); :func:`walk` builds graphs.
    """
    seen: set[Any] = set()
    stack = [fn for fn in starts if fn is not None]
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        yield fn
        stack.extend(n for n, _ in fn.next_functions if n is not None)


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
    masks: list[int] = field(default_factory=list)  # loss bitsets, as analysis.loss_masks
    fn_of: list[Any] = field(default_factory=list)  # node id -> autograd node (None for losses)


def _module_tag(fn: Any, known: Known) -> str | None:
    try:
        md = fn.metadata
    except Exception:
        return None
    mod = md.get("graphprobe_module") if md else None
    return known.module_path(mod) if mod is not None else None


#: Op nodes whose output shape and source line are read (the first ones walked, nearest the
#: losses); beyond, the graph is too big for a reader to look at every op's details.
MAX_OP_DETAILS = 100_000


def _op_details(g: ProbeGraph, fn_of: Sequence[Any], n: int) -> None:
    """Each op node's output shape (autograd keeps it on the node) and the forward line the
    recorder tagged it with (``graphprobe_line``), for the HTML page's node details.

    Only under a recorder, and for the first :data:`MAX_OP_DETAILS` ops. Complexity: O(V), about
    2 µs a node.
    """
    meta, loc, kinds = g.meta, g.location, g.kind
    seen = 0
    for v in range(n):
        if kinds[v] != "op":
            continue
        seen += 1
        if seen > MAX_OP_DETAILS:
            break
        fn = fn_of[v]
        try:
            out = fn._input_metadata[0]  # the gradient it takes has the shape of its output
            meta[v] = TensorMeta(tuple(out.shape), str(out.dtype).replace("torch.", ""), str(out.device))
        except Exception:  # noqa: BLE001 - nested or symbolic tensors, an old torch: no shape
            pass
        try:
            line = fn.metadata.get("graphprobe_line")
        except Exception:  # noqa: BLE001
            line = None
        if line is not None:
            loc[v] = f"{line[0]}:{line[1]}"


@dataclass
class CutSides:
    """The autograd nodes on either side of one recorded cut, as the walk needs them."""

    source_fns: Sequence[Any]
    target_fns: Sequence[Any] = ()
    target_leaf_ids: Sequence[int] = ()


def walk(roots: Sequence[Root], known: Known, *, cuts: Sequence[CutSides] = (),
         var_names: dict[Any, str] | None = None, reentry_ids: set[int] | None = None,
         plain_leaf_ids: set[int] | None = None, check_freed: bool = True,
         terms: Sequence[Root] = (), read_tags: bool = False) -> WalkResult:
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
        Read one saved tensor per node to find nodes an earlier backward freed. Above
        20,000 nodes one node in 16 is read, and every node once one of them is freed.
    terms : sequence of Root
        Named terms of a summed loss (``loss1`` in ``loss1 + loss2``): each becomes a loss node
        only when its ``grad_fn`` is already in the roots' graph.
    read_tags : bool
        Read the module tags a recorder left in ``grad_fn.metadata``. Reading ``metadata``
        makes torch create a dict on every node, so it is off unless asked: the pipeline asks
        once a recorder has tagged nodes (:func:`graphprobe.record.recorder.modules_tagged`).

    Returns
    -------
    WalkResult
        With ``masks``: bit ``i`` of ``masks[v]`` set when loss ``i`` reaches node ``v``
        (what :func:`graphprobe.analysis.loss_masks` computes, found during the walk).

    Notes
    -----
    Complexity: O(V + E) with an explicit stack, plus, for each node, one more visit per extra
    loss that reaches it (the losses' bitsets are filled as the walk meets shared nodes). No
    recursion, so depth is unbounded.
    """
    w = _Walker(known, var_names or {}, reentry_ids or set(), plain_leaf_ids or set(), check_freed)
    w.read_tags = read_tags
    g = w.g
    for i, root in enumerate(roots):
        w.add_root(root, 1 << i)
    for term in terms:
        w.add_term(term, 1 << len(g.losses))
    pending = list(cuts)
    grew = True
    fn_node, leaf_node = w.fn_node, w.leaf_node
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
                    w.walk_from(fn, 0)
        pending = rest
    w.finish_columns()
    w.finish_freed()
    ensure_stack_for_free(len(g.kind))
    # Module tags where the recorder gave none: the module of the parameters an op reads directly.
    if any(m is None for m in g.module):
        _infer_modules(g)
    return WalkResult(g, fn_node, leaf_node, w.masks, w.fn_of)


#: autograd node type -> (its name, "leaf" for AccumulateGrad / an opaque kind / None)
_TYPE_INFO: dict[type, tuple[str, str | None]] = {}
#: the plain op types of _TYPE_INFO (neither a leaf nor opaque) -> their name, for the walk's loop
_PLAIN_OPS: dict[type, str] = {}


class _Walker:
    """The walk's state: the graph's columns filled directly, for speed on 500k-node graphs."""

    def __init__(self, known: Known, var_names: dict[Any, str], reentry_ids: set[int],
                 plain_leaf_ids: set[int], check_freed: bool) -> None:
        self.g = g = ProbeGraph()
        self.known = known
        self.var_names = var_names
        self.reentry_ids = reentry_ids
        self.plain_leaf_ids = plain_leaf_ids
        self.check_freed = check_freed
        self.fn_node: dict[Any, int] = {}
        self.leaf_node: dict[int, int] = {}
        self.fn_of: list[Any] = []  # node id -> autograd node (None for loss nodes)
        self.masks: list[int] = []
        # While walking only three columns grow per node (op, fn_of, masks): most nodes are plain
        # ops whose kind is "op", label is their op, and module and name are unknown. The rest
        # keep their columns here, and finish_columns() fills the graph's columns in bulk.
        self.op = g.op
        self.extra: dict[int, tuple[str, str, str | None, str | None]] = {}
        self.read_tags = False

    def _append(self, kind: str, label: str, op: str | None, module: str | None, name: str | None,
                fn: Any, mask: int) -> int:
        nid = len(self.op)
        self.op.append(op)
        self.fn_of.append(fn)
        self.masks.append(mask)
        if kind != "op" or label != op or module is not None or name is not None:
            self.extra[nid] = (kind, label, module, name)
        return nid

    def finish_columns(self) -> None:
        """Fill kind, label, module and name for every node (bulk list operations)."""
        g = self.g
        n = len(self.op)
        g.kind[:] = ["op"] * n
        # An op that is None was appended with a str label != op, so extra sets its label below.
        g.label[:] = cast("list[str]", self.op)
        g.module[:] = [None] * n
        g.name[:] = [None] * n
        by_kind: dict[str, list[int]] = {}
        for nid, (kind, label, module, name) in self.extra.items():
            g.kind[nid], g.label[nid], g.module[nid], g.name[nid] = kind, label, module, name
            if kind != "op":
                by_kind.setdefault(kind, []).append(nid)
        # The non-op nodes are all in extra, in id order: nodes_of_kind() need not scan the ops.
        g._kind_index = (n, by_kind)
        if self.read_tags:  # the recorder tagged ops with their module in grad_fn.metadata
            known, fn_of, kind_col, mod_col = self.known, self.fn_of, g.kind, g.module
            for v in range(n):
                if kind_col[v] == "op" and mod_col[v] is None:
                    mod_col[v] = _module_tag(fn_of[v], known)
            _op_details(g, fn_of, n)
        fn_node = self.fn_node
        for fn, nm in self.var_names.items():
            node = fn_node.get(fn)
            if node is not None and g.kind[node] == "op":
                g.name[node] = nm

    def new(self, fn: Any, mask: int) -> int:
        """A node for autograd node ``fn``, reached by the losses in ``mask``."""
        t = type(fn)
        ti = _TYPE_INFO.get(t)
        if ti is None:
            ti = _TYPE_INFO[t] = (t.__name__, "leaf" if t.__name__ == "AccumulateGrad" else opaque_kind(fn))
            if ti[1] is None:
                _PLAIN_OPS[t] = t.__name__
        is_acc = ti[1] == "leaf"
        g = self.g
        if is_acc:
            variable = fn.variable
            vid = id(variable)
            seen = self.leaf_node.get(vid)
            if seen is not None:  # the same leaf, met first as a loss (probe(p, p * 3))
                self.fn_node[fn] = seen
                self.fn_of[seen] = fn
                self.masks[seen] |= mask
                return seen
            info = self.known.params.get(vid)
            if info is not None:
                nid = self._append("param", info.name, "AccumulateGrad", info.module, info.name, fn, mask)
                g.param_order[nid] = info.order
                if info.optimizers:
                    g.optimizers[nid] = list(info.optimizers)
            elif vid in self.plain_leaf_ids:
                nid = self._append("leaf", "leaf", "AccumulateGrad", None, None, fn, mask)
            elif isinstance(variable, torch.nn.Parameter) and vid not in self.reentry_ids:
                nid = self._append("param", "Parameter", "AccumulateGrad", None, None, fn, mask)
            else:
                nid = self._append("reentry_leaf", "leaf (requires_grad)", "AccumulateGrad", None, None, fn, mask)
            g.meta[nid] = TensorMeta.of(variable)
            self.leaf_node[vid] = nid
        else:
            name = t.__name__
            nid = self._append("op", name, name, None, None, fn, mask)
            if ti[1] is not None:
                g.opaque[nid] = ti[1]
        self.fn_node[fn] = nid
        return nid

    def walk_from(self, fn: Any, bit: int) -> int:
        """Walk from ``fn`` (iteratively); new nodes get ``bit``, old ones gain it.

        The loop is the hot path on 500k-node graphs, so op nodes are appended inline; leaves
        and node types not seen before go through :meth:`new`.
        """
        fn_node, masks = self.fn_node, self.masks
        nid = fn_node.get(fn)
        if nid is not None:
            if bit and not masks[nid] & bit:
                self.propagate(nid, bit)
            return nid
        nid = self.new(fn, bit)
        g = self.g
        src_append, dst_append = g.src.append, g.dst.append
        op_a, fn_of_a, mask_a = self.op.append, self.fn_of.append, masks.append
        new = self.new
        plain = _PLAIN_OPS.get
        setdefault = fn_node.setdefault
        # (autograd node, its id): the id travels with the node rather than being looked up.
        stack = [(fn, nid)]
        pop, push = stack.pop, stack.append
        n = len(self.op)
        while stack:
            f, me = pop()
            for nxt, _ in f.next_functions:
                if nxt is None:
                    continue
                # One dict operation: the next id if nxt is new (every id in use is below n).
                n2 = setdefault(nxt, n)
                if n2 == n:
                    name = plain(type(nxt))
                    if name is not None:
                        # A plain op (not a leaf, not opaque): the common case, three appends.
                        n += 1
                        op_a(name)
                        fn_of_a(nxt)
                        mask_a(bit)
                    else:  # new() appends the node as id n (or finds its leaf met as a loss)
                        n2 = new(nxt, bit)
                        n = len(self.op)
                    push((nxt, n2))
                elif bit and not masks[n2] & bit:
                    self.propagate(n2, bit)
                src_append(n2)
                dst_append(me)
        return nid

    def propagate(self, start: int, bit: int) -> None:
        """Give ``bit`` to ``start`` and everything upstream of it that lacks it (iteratively)."""
        masks, fn_of, fn_node = self.masks, self.fn_of, self.fn_node
        masks[start] |= bit
        stack = [start]
        while stack:
            f = fn_of[stack.pop()]
            if f is None:
                continue
            for nxt, _ in f.next_functions:
                if nxt is not None:
                    n2 = fn_node[nxt]
                    if not masks[n2] & bit:
                        masks[n2] |= bit
                        stack.append(n2)

    def add_root(self, root: Root, bit: int) -> None:
        g = self.g
        t = root.tensor
        lid = self._append("loss", root.name, None, None, root.name, None, bit)
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
                info = self.known.params.get(id(t))
                pid = self.leaf_node.get(id(t))
                if pid is None:
                    pid = self._append("param" if info else "leaf", info.name if info else "leaf",
                                       "AccumulateGrad", info.module if info else None,
                                       info.name if info else None, None, 0)
                    g.meta[pid] = TensorMeta.of(t)
                    self.leaf_node[id(t)] = pid
                self.masks[pid] |= bit
                g.src.append(pid)
                g.dst.append(lid)
            return
        g.src.append(self.walk_from(fn, bit))
        g.dst.append(lid)

    def add_term(self, term: Root, bit: int) -> None:
        """A named term of a summed loss, kept only when the roots' graph already holds it."""
        g = self.g
        nid = self.fn_node.get(term.tensor.grad_fn)
        if nid is None:
            return
        lid = self._append("loss", term.name, None, None, term.name, None, bit)
        g.losses.append(lid)
        g.meta[lid] = TensorMeta.of(term.tensor)
        if term.location:
            g.location[lid] = term.location
        g.src.append(nid)
        g.dst.append(lid)
        g.terms.add(lid)
        self.propagate(nid, bit)

    def finish_freed(self) -> None:
        """Find the nodes an earlier backward freed: a sample first, every op if one is freed.

        Reading a saved tensor costs about a microsecond, so above 20,000 nodes one op in 16 is
        read; freed nodes come in whole backward passes, so a sample finds them, and then every
        op is read.
        """
        if not self.check_freed:
            return
        fn_of, freed, kind = self.fn_of, self.g.freed, self.g.kind
        n = len(kind)
        head = range(min(n, 20_000))
        sample = [v for v in (list(head) + list(range(20_000, n, 16))) if kind[v] == "op"]
        attrs_of = _SAVED_ATTRS
        for v in sample:
            fn = fn_of[v]
            # The common case, inline (once per op): its first saved slot holds data, so
            # is_freed would say False. Anything else is left to is_freed.
            attrs = attrs_of.get(type(fn))
            if attrs:
                try:
                    r = getattr(fn, attrs[0])
                    if type(r) is _SAVED_TENSOR and r.data is not None:
                        continue
                except Exception:  # noqa: BLE001 - is_freed tells what the error means
                    pass
            elif attrs is not None:
                continue  # nothing saved: never freed
            if is_freed(fn):
                freed.add(v)
        if freed and n > 20_000:
            for v in [v for v, k in enumerate(kind) if k == "op"]:
                if v not in freed and is_freed(fn_of[v]):
                    freed.add(v)


def _infer_modules(g: ProbeGraph) -> None:
    """Tag an op with the module of the parameters it reads directly, when that is one module."""
    kinds, mods = g.kind, g.module
    params = [v for v in g.nodes_of_kind("param") if mods[v] is not None]
    if not params:
        return
    import numpy as np  # noqa: PLC0415  (numpy is a dependency; imported where it pays)

    # Each parameter's module as a small int; -1 for every other node.
    names = sorted({cast(str, mods[v]) for v in params})
    code_of = {m: i for i, m in enumerate(names)}
    code = np.full(len(kinds), -1, dtype=np.int64)
    code[np.asarray(params, dtype=np.int64)] = [code_of[cast(str, mods[v])] for v in params]
    src = np.asarray(g.src, dtype=np.int64)
    hits = np.nonzero(code[src] >= 0)[0]  # the edges out of parameters, in one vectorised pass
    if not len(hits):
        return
    dst = np.asarray(g.dst, dtype=np.int64)[hits]
    c = code[src[hits]]
    # Per consumer, the smallest and largest module code of the parameters it reads: one
    # module when they agree.
    by = np.lexsort((c, dst))
    dst, c = dst[by], c[by]
    first = np.ones(len(dst), dtype=bool)
    first[1:] = dst[1:] != dst[:-1]
    starts = np.nonzero(first)[0]
    ends = np.append(starts[1:], len(dst)) - 1
    one = c[starts] == c[ends]
    for d, k in zip(dst[starts[one]].tolist(), c[starts[one]].tolist()):
        if kinds[d] == "op" and mods[d] is None:
            mods[d] = names[k]
