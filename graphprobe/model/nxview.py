"""The report's graph as a ``networkx.DiGraph``: the autograd graph alone, or with its cut edges.

:attr:`graphprobe.Report.graph` is the autograd graph and nothing else, so that networkx's
algorithms agree with the report: ``nx.ancestors(G, loss)`` holds exactly the parameters the loss
reaches, and the weakly connected components that hold a loss are the report's components. The
cut edges the recorder found (where data left autograd and came back) are not autograd edges, so
they live in a second view, :attr:`graphprobe.Report.graph_with_cuts`, as edges of
``kind="cut"``; :func:`data_edges` gives the autograd part of such a view back.

Every attribute is GraphML-safe, so ``nx.write_graphml(G, path)`` works: an attribute with no
value (an op node's shape, a node without a module) is the empty string rather than None, so
every node has every key (``G.nodes[n]["op"]`` never raises), and a list (a shape, the losses) is
stored as JSON text (``"[2, 3]"``); ``json.loads`` gives it back.

Node attributes: ``kind``, ``label``, ``op``, ``module``, ``name``, ``shape``, ``dtype``,
``device``, ``freed``, ``location``, as in :mod:`graphprobe.model.graph`. Edges run in data-flow
direction (parameter -> op -> loss) with ``kind="data"``; in the view with cuts, a cut edge has
``kind="cut"``, ``cut`` (its index in the report's ``cuts``), ``cut_kind`` (``numpy``, ``item``
...), ``severity`` and ``location`` (empty where unknown).

Graph attributes (``G.graph``): ``schema`` (the JSON schema version), ``verdict``, ``ok`` (no
error-severity finding), ``losses`` and ``loss_nodes`` (JSON lists: the loss names and their
node ids, in order), and ``errors``, ``warnings``, ``infos`` (the finding counts).

Where the report and a plain graph algorithm still differ, it is on purpose, and said here:

- A parameter that no walk met (an unused module, a module cut off) is an isolated node; the
  report's ``components`` group such parameters by their top-level module.
- A frozen parameter (``requires_grad=False``) is a node, never in a report component.
- Where a region graphprobe can't see inside (a custom ``autograd.Function``, a reentrant
  checkpoint) was confirmed by a real backward, the report's ``reaches`` is the confirmed answer
  and the graph is what the walk saw.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Protocol, Sequence

from .version import SCHEMA_VERSION


# What this view reads of a graph and of a report, typed structurally: a ProbeGraph and a
# Report fit, and this module imports neither (ProbeGraph.to_networkx calls into it, and the
# report's data sits above the graph), so the import graph stays one way.
class _Graph(Protocol):
    @property
    def src(self) -> Sequence[int]: ...
    @property
    def dst(self) -> Sequence[int]: ...
    @property
    def cut_edges(self) -> Sequence[tuple[int, int, int]]: ...
    def __len__(self) -> int: ...
    def node_attrs(self, i: int) -> dict[str, Any]: ...


class _Report(Protocol):
    @property
    def cuts(self) -> Sequence[Any]: ...
    @property
    def losses(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def ok(self) -> bool: ...
    def counts(self) -> dict[str, int]: ...
    def verdict(self) -> str: ...

__all__ = ["to_networkx", "data_edges"]


def _safe(attrs: dict[str, Any]) -> dict[str, Any]:
    """None as "" and lists (and dicts) as JSON text: GraphML takes scalars only."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if v is None:
            v = ""
        elif isinstance(v, (list, tuple, dict)):
            v = json.dumps(v)
        out[k] = v
    return out


def _nodes(g: _Graph) -> Iterable[tuple[int, dict[str, Any]]]:
    for i in range(len(g)):
        attrs = g.node_attrs(i)
        del attrs["id"]  # the node key itself
        yield i, _safe(attrs)


def to_networkx(g: _Graph, report: _Report | None = None, cuts: bool = False) -> Any:
    """Build the ``networkx.DiGraph`` of ``g`` (see the module docstring for its attributes).

    Parameters
    ----------
    g : ProbeGraph
        The walked graph (``report.model``).
    report : Report or ReportData, optional
        Fills ``G.graph`` (verdict, losses, counts) and the cut edges' kind and severity.
    cuts : bool
        Add the cut edges (``kind="cut"``) to the autograd edges.

    Returns
    -------
    networkx.DiGraph

    Notes
    -----
    Complexity: O(V + E), built in bulk.

    Examples
    --------
    >>> import torch, graphprobe, networkx as nx
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> r = graphprobe.probe((w * 2).sum(), names=["loss"], params={"w": w})
    >>> G = r.graph
    >>> [G.nodes[n]["label"] for n in nx.ancestors(G, r.losses[0]["node"])
    ...  if G.nodes[n]["kind"] == "param"]
    ['w']
    >>> G.graph["losses"]
    '["loss"]'
    """
    import networkx as nx

    G = nx.DiGraph()
    G.add_nodes_from(_nodes(g))
    G.add_edges_from(zip(g.src, g.dst), kind="data")
    if cuts:
        found = report.cuts if report is not None else []
        for s, d, c in g.cut_edges:
            info = found[c] if 0 <= c < len(found) else {}
            G.add_edge(s, d, **_safe({"kind": "cut", "cut": c, "cut_kind": info.get("kind"),
                                      "severity": info.get("severity"), "location": info.get("location")}))
    if report is not None:
        counts = report.counts()
        G.graph.update(_safe({
            "schema": SCHEMA_VERSION,
            "verdict": report.verdict(),
            "ok": report.ok,
            "losses": [lo["name"] for lo in report.losses],
            "loss_nodes": [lo["node"] for lo in report.losses],
            "errors": counts.get("error", 0),
            "warnings": counts.get("warning", 0),
            "infos": counts.get("info", 0),
        }))
    return G


def data_edges(G: Any) -> Any:
    """The autograd part of a graph with cuts: a read-only view without the ``kind="cut"`` edges.

    ``data_edges(report.graph_with_cuts)`` has the same nodes and edges as ``report.graph``.
    Complexity: O(1) to make; each edge is checked as it is read.
    """
    import networkx as nx

    return nx.subgraph_view(G, filter_edge=lambda s, d: G.edges[s, d].get("kind") != "cut")
