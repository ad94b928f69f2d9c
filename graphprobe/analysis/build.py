"""The build step: a walked graph and its cuts, as node ids, in; the report's data out.

Every analysis runs here once, over the graph the walk made: reachability, components, what is
shared, the cuts judged by the severity policy, what they starve, the causes. Ids in, ids out:
nothing here touches a tensor, an autograd node or the recorder (:mod:`graphprobe.probing` turns
those into node ids first), and the walked graph is never changed.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence, TypeVar

from ..model.findings import Opaque, ScriptError
from ..model.graph import ProbeGraph
from ..model.report import ReportData
from . import connectivity, detached, reach, sharing
from . import findings as F
from .findings import CutInput

__all__ = ["build"]

R = TypeVar("R", bound=ReportData)


def build(g: ProbeGraph, cuts: Sequence[CutInput] = (), *, recorded: bool = False,
          reentry_confirmed: set[int] | None = None, truth: dict[int, set[int]] | None = None,
          unconfirmed_why: str = "", masks: list[int] | None = None,
          loss_steps: Sequence[set[str] | None] = (), consumed: set[int] | None = None,
          errors: Sequence[ScriptError] = (), report_type: type[R] = ReportData) -> R:  # type: ignore[assignment]
    """Run every analysis on ``g`` and gather the typed findings and their causes into report data.

    Parameters
    ----------
    g : ProbeGraph
        The walked graph. It is read, never changed: the report holds a copy whose cut edges and
        composite losses are this analysis's (the columns are shared, not copied).
    cuts : sequence of CutInput
        The cuts, as node ids: the recorder's and those linked by value only (``guess=True``).
    recorded : bool
        Whether a recorder watched the forward (then a rebuilt leaf with no cut is a finding).
    reentry_confirmed, consumed : set of int
        Rebuilt leaves the recorder saw come back; leaves whose gradient the script used.
    truth : dict, optional
        Loss index -> the parameter nodes a real backward reached (it wins over structure).
    masks : list of int, optional
        The walk's reachability bitsets; computed here when not given.
    loss_steps : sequence
        Per loss, the optimizers whose step followed it.
    errors : sequence of ScriptError
        The runner's diagnoses, described here from the graph before the report is frozen.
    report_type : type
        The class to build (``ReportData`` or a subclass such as :class:`graphprobe.report.Report`).

    Returns
    -------
    ReportData
        An instance of ``report_type``.

    Notes
    -----
    Complexity: O(V + E) plus O(V + E) per cut for its upstream search.
    """
    reentry_confirmed = reentry_confirmed or set()
    consumed = consumed or set()
    if masks is None:
        masks = reach.loss_masks(g)
    else:  # the walk's bitsets; nodes added since (unwalked parameters) are reached by nothing
        masks = list(masks) + [0] * (len(g.kind) - len(masks))
    if truth:
        # A real backward said which parameters each loss reaches: it wins over structure, which
        # can't see inside a checkpoint or a compiled region and over-states a custom Function.
        for v in g.nodes_of_kind("param"):
            for i, nodes in truth.items():
                bit = 1 << i
                masks[v] = (masks[v] | bit) if v in nodes else (masks[v] & ~bit)
    # A loss that reaches a named term of itself (tol_loss = loss1 + loss2) is composite.
    composite = set(g.composite)
    producers = g.producers() if g.terms else []
    for t in g.terms:
        for p in producers[t]:
            for i, lid in enumerate(g.losses):
                if lid not in g.terms and masks[p] >> i & 1:
                    composite.add(lid)
    # What this analysis adds to the graph (composite losses, cut edges) goes on a copy that the
    # report holds: the walked graph stays as the walk made it (its columns are shared, not copied).
    g = dataclasses.replace(g, composite=composite, cut_edges=list(g.cut_edges))
    rep = report_type(g)
    opaque_names = {"checkpoint": "a reentrant torch.utils.checkpoint", "compiled": "a torch.compile region",
                    "custom": "a custom autograd.Function"}
    for v, kind in sorted(g.opaque.items()):
        how = ("confirmed by a real backward" if truth
               else "not confirmed" + (f" ({unconfirmed_why})" if unconfirmed_why else ""))
        rep.opaque.append(Opaque(severity="info", node=v, op=g.op[v], module=g.module[v], kind=kind,
                                 confirmed=bool(truth),
                                 reason=f"graphprobe can't see inside {g.op[v]} ({opaque_names[kind]}); "
                                        f"reachability through it is {how}"))
    rep.losses = [{"name": g.label[l], "location": g.location.get(l), "node": l,
                   "composite": l in composite} for l in g.losses]
    rep.reaches = reach.reaches(g, masks)
    for v in g.in_param_order(g.nodes_of_kind("param")):
        m = g.meta.get(v)
        rep.params.append({"name": g.label[v], "shape": list(m.shape) if m else None,
                           "module": g.module[v], "optimizers": g.optimizers.get(v, []),
                           "reached_by": reach.reached_by(g, v, masks), "node": v,
                           "frozen": v in g.frozen})
    rep.components = connectivity.components(g, masks)
    rep.shared = sharing.shared(g, masks)
    rep.frozen = [{"name": g.label[v], "module": g.module[v], "node": v} for v in detached.frozen(g)]
    inputs = list(cuts)
    # No cut: nothing to judge, and judge_cuts' indexes (producers and consumers of every node)
    # would cost more than the rest of the analyses on a big graph.
    found = F.judge_cuts(g, masks, inputs, loss_steps, consumed) if inputs else F.Findings()
    # The cut edges are drawn by the renderers; they never take part in reachability (the copy's own list).
    g.cut_edges.extend(found.cut_edges)
    # Which cut each rebuilt leaf came back through (the most severe when several).
    leaf_cut: dict[int, int] = {}
    for c, i in zip(inputs, found.index_of_input):
        if c.leaf is not None and (c.leaf not in leaf_cut or i < leaf_cut[c.leaf]):
            leaf_cut[c.leaf] = i
    hides = any(k in ("checkpoint", "compiled") for k in g.opaque.values())
    opaque_ops = ", ".join(sorted({g.op[o] or "" for o in g.opaque}))
    found.detached = list(F.unreached_findings(g, masks, found.cuts, found.upstream, detached.unreached(g, masks),
                                               hides, bool(truth), opaque_ops))
    found.detached += F.leaf_findings(g, masks, found.cuts, leaf_cut, reentry_confirmed, consumed,
                                      recorded=recorded)
    found.freed = F.freed_findings(g, masks)
    found.errors = F.describe_errors(g, errors)
    found.causes = F.build_causes(g, found)
    rep.cuts, rep.detached, rep.freed, rep.errors, rep.causes = (found.cuts, found.detached, found.freed,
                                                                 found.errors, found.causes)
    return rep
