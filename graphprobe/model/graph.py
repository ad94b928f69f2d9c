"""The graph model: a compact, columnar record of one autograd graph, and its networkx view.

The walk (:mod:`graphprobe.walk`) fills a :class:`ProbeGraph`; the analyses read it; the renderers
draw it.  Columns instead of one dict per node keep a 500k-node graph small, and the networkx
``DiGraph`` (:mod:`graphprobe.model.nxview`; ``Report.graph`` builds it once, on first access) is
built in bulk.

Node schema (one row per node, ids are ``0..n-1`` in walk order, stable for the same program):

=============  ===========================================================================
attribute      meaning
=============  ===========================================================================
``kind``       ``loss``, ``op``, ``param``, ``leaf`` (an input leaf that requires grad, made
               on purpose) or ``reentry_leaf`` (a leaf that requires grad but belongs to no
               module or optimizer: usually a tensor rebuilt after a cut)
``label``      text to draw: ``net1.weight``, ``AddmmBackward0``, ``loss2``
``op``         the ``grad_fn`` class name (``AccumulateGrad`` for leaves, None for losses)
``module``     owning module path where known (``net1``, ``model.coarse``)
``name``       the user's name: a loss or parameter name, or the variable that holds an op's
               output (``tmp``)
``shape``      tensor shape (list of int) for loss, param and leaf nodes, else None
``dtype``      ``float32`` ...;  ``device``: ``cpu``, ``cuda:0`` ...
``freed``      True when an earlier backward freed this node's saved tensors
``location``   ``file:line`` where known (losses under the recorder)
=============  ===========================================================================

Edges run in data-flow direction (parameter -> op -> loss). ``kind`` is ``data`` for an autograd
edge and ``cut`` for a cut edge the recorder found (``cut`` then holds its index in ``cuts``).
Cut edges are not autograd edges: reachability never crosses them, and ``Report.graph`` leaves
them out (``Report.graph_with_cuts`` has them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["NODE_KINDS", "ProbeGraph", "TensorMeta"]

NODE_KINDS = ("loss", "op", "param", "leaf", "reentry_leaf")


@dataclass(frozen=True)
class TensorMeta:
    """Shape, dtype and device of a tensor, copied out so no tensor is kept alive."""

    shape: tuple[int, ...]
    dtype: str
    device: str

    @classmethod
    def of(cls, t: Any) -> "TensorMeta":
        """Copy ``t``'s shape, dtype and device out (the strings cached per dtype and device)."""
        dtype, device = t.dtype, t.device
        key = (dtype, device)
        names = _META_NAMES.get(key)
        if names is None:
            names = (str(dtype).replace("torch.", ""), str(device))
            if len(_META_NAMES) < 1_000:
                _META_NAMES[key] = names
        return cls(tuple(map(int, t.shape)), *names)


#: (dtype, device) -> their names in a TensorMeta: a graph has few, and a param node asks for each.
_META_NAMES: dict[tuple[Any, Any], tuple[str, str]] = {}


@dataclass
class ProbeGraph:
    """A walked autograd graph in columns; see the module docstring for the schema."""

    kind: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    op: list[str | None] = field(default_factory=list)
    module: list[str | None] = field(default_factory=list)
    name: list[str | None] = field(default_factory=list)
    meta: dict[int, TensorMeta] = field(default_factory=dict)
    location: dict[int, str] = field(default_factory=dict)
    freed: set[int] = field(default_factory=set)
    #: data edges, producer -> consumer
    src: list[int] = field(default_factory=list)
    dst: list[int] = field(default_factory=list)
    #: cut edges: (from node, to node, index into the report's cuts)
    cut_edges: list[tuple[int, int, int]] = field(default_factory=list)
    #: loss node ids, in the order the losses were given
    losses: list[int] = field(default_factory=list)
    #: loss node ids whose named terms are losses too (``loss1 + loss2``); shared ignores them
    composite: set[int] = field(default_factory=set)
    #: loss node ids that are named terms of another loss (found in the caller's frame)
    terms: set[int] = field(default_factory=set)
    #: param node ids -> optimizer names that hold them
    optimizers: dict[int, list[str]] = field(default_factory=dict)
    #: param node ids -> registration order of the parameter (display order)
    param_order: dict[int, int] = field(default_factory=dict)
    #: op node ids graphprobe can't see inside -> what they are (checkpoint, compiled, custom)
    opaque: dict[int, str] = field(default_factory=dict)
    #: param node ids with requires_grad=False (known, never walked)
    frozen: set[int] = field(default_factory=set)
    #: parameters not judged: their optimizer never stepped in the captured step (never unreached)
    unjudged: set[int] = field(default_factory=set)
    _producers: list[list[int]] | None = field(default=None, repr=False)
    _kind_index: tuple[int, dict[str, list[int]]] | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, report: dict[str, Any]) -> "ProbeGraph":
        """Rebuild the graph of a saved report: the inverse of the report's ``nodes``/``edges``.

        ``report`` is a whole schema-1 report dict (:meth:`graphprobe.Report.to_dict`): besides
        ``nodes`` and ``edges``, the columns the renderers read come from its node references
        (``losses[].node`` and ``composite``, ``params[].node`` with ``optimizers`` and
        ``frozen``, in registration order, ``opaque[].node`` and ``kind``). What the JSON does
        not keep (which losses were named terms, the parameters left unjudged) is left empty:
        no renderer reads it. Complexity: O(V + E).
        """
        g = cls()
        nodes = sorted(report.get("nodes", []), key=lambda n: n["id"])
        for i, n in enumerate(nodes):
            if n["id"] != i:
                raise ValueError(f"node ids must be 0..{len(nodes) - 1}; found {n['id']} at {i}")
            g.kind.append(n["kind"])
            g.label.append(n["label"])
            g.op.append(n.get("op"))
            g.module.append(n.get("module"))
            g.name.append(n.get("name"))
            if n.get("shape") is not None:
                g.meta[i] = TensorMeta(tuple(n["shape"]), n.get("dtype") or "", n.get("device") or "")
            if n.get("location") is not None:
                g.location[i] = n["location"]
            if n.get("freed"):
                g.freed.add(i)
        n = len(nodes)
        for e in report.get("edges", []):
            if not (0 <= e["source"] < n and 0 <= e["target"] < n):
                raise ValueError(f"edge {e['source']} -> {e['target']} names a node outside 0..{n - 1}")
            if e.get("kind") == "cut":
                g.cut_edges.append((e["source"], e["target"], e["cut"]))
            else:
                g.src.append(e["source"])
                g.dst.append(e["target"])
        for loss in report.get("losses", []):
            if loss.get("node") is not None:
                g.losses.append(loss["node"])
                if loss.get("composite"):
                    g.composite.add(loss["node"])
        # ``params`` is written in registration order, so its index is the display order.
        for order, p in enumerate(report.get("params", [])):
            v = p.get("node")
            if v is None:
                continue
            g.param_order[v] = order
            if p.get("optimizers"):
                g.optimizers[v] = list(p["optimizers"])
            if p.get("frozen"):
                g.frozen.add(v)
        for o in report.get("opaque", []):
            g.opaque[o["node"]] = o.get("kind", "custom")
        return g

    # -- building -------------------------------------------------------------------------
    def add_node(self, kind: str, label: str, op: str | None = None, module: str | None = None,
                 name: str | None = None) -> int:
        """Append a node and return its id."""
        self.kind.append(kind)
        self.label.append(label)
        self.op.append(op)
        self.module.append(module)
        self.name.append(name)
        self._producers = None
        return len(self.kind) - 1

    def add_edge(self, producer: int, consumer: int) -> None:
        """Append a data edge in data-flow direction."""
        self.src.append(producer)
        self.dst.append(consumer)
        self._producers = None

    # -- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.kind)

    @property
    def number_of_edges(self) -> int:
        return len(self.src)

    def producers(self) -> list[list[int]]:
        """For each node, the nodes that feed it (its autograd ``next_functions``), cached."""
        if self._producers is None:
            prods: list[list[int]] = [[] for _ in range(len(self.kind))]
            for s, d in zip(self.src, self.dst):
                prods[d].append(s)
            self._producers = prods
        return self._producers

    def nodes_of_kind(self, *kinds: str) -> list[int]:
        """Node ids whose kind is one of ``kinds``, in id order.

        The non-op nodes (a few per parameter and loss) are indexed once per graph version, so
        asking for parameters on a 500k-node graph does not scan every op again.
        """
        idx = self._kind_index
        n = len(self.kind)
        if idx is None or idx[0] > n:
            by: dict[str, list[int]] = {}
            for i, k in enumerate(self.kind):
                if k != "op":
                    by.setdefault(k, []).append(i)
            idx = self._kind_index = (n, by)
        elif idx[0] < n:
            # Nodes appended since (unwalked parameters): index the new tail only.
            by = {k: list(vs) for k, vs in idx[1].items()}
            col = self.kind
            for i in range(idx[0], n):
                if col[i] != "op":
                    by.setdefault(col[i], []).append(i)
            idx = self._kind_index = (n, by)
        if "op" in kinds:
            want = set(kinds)
            return [i for i, k in enumerate(self.kind) if k in want]
        if len(kinds) == 1:
            return list(idx[1].get(kinds[0], []))
        return sorted(i for k in kinds for i in idx[1].get(k, []))

    def in_param_order(self, nodes: Any) -> list[int]:
        """``nodes`` sorted as their parameters were registered (weight before bias), then by id."""
        big = len(self.kind)
        order = self.param_order
        return sorted(nodes, key=lambda v: (order.get(v, big), v))

    def node_attrs(self, i: int) -> dict[str, Any]:
        """The documented attribute dict of node ``i`` (JSON-ready)."""
        m = self.meta.get(i)
        return {
            "id": i,
            "kind": self.kind[i],
            "label": self.label[i],
            "op": self.op[i],
            "module": self.module[i],
            "name": self.name[i],
            "shape": list(m.shape) if m else None,
            "dtype": m.dtype if m else None,
            "device": m.device if m else None,
            "freed": i in self.freed,
            "location": self.location.get(i),
        }

    def iter_edges(self) -> Iterator[dict[str, Any]]:
        """Every edge as a JSON-ready dict: data edges first, then cut edges."""
        for s, d in zip(self.src, self.dst):
            yield {"source": s, "target": d, "kind": "data"}
        for s, d, c in self.cut_edges:
            yield {"source": s, "target": d, "kind": "cut", "cut": c}

    def to_networkx(self, cuts: bool = False) -> Any:
        """The graph as a ``networkx.DiGraph``: autograd edges only, or with the cut edges.

        See :mod:`graphprobe.model.nxview`; :attr:`graphprobe.Report.graph` adds the verdict and the
        losses to ``G.graph``. Complexity: O(V + E).
        """
        from .nxview import to_networkx

        return to_networkx(self, cuts=cuts)
