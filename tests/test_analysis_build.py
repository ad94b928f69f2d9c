"""The build step (``graphprobe.analysis.build``): ids in, report data out, the walked graph untouched."""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from graphprobe.analysis.build import build
from graphprobe.analysis.findings import CutInput
from graphprobe.model.known import Known
from graphprobe.model.report import ReportData
from graphprobe.report import Report
from graphprobe.walk import Root, walk


def _two_nets_cut_between():
    torch.manual_seed(0)
    net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
    x = torch.randn(2, 3)
    h = net1(x)
    loss1 = h.pow(2).mean()
    rebuilt = torch.from_numpy(h.detach().numpy() * 0.5)  # the cut, made by hand here
    loss2 = net2(rebuilt).sum()
    total = loss1 + loss2
    res = walk([Root("total", total), Root("loss1", loss1), Root("loss2", loss2)], Known())
    src = res.fn_node[h.grad_fn]
    dst = res.fn_node[loss2.grad_fn.next_functions[0][0]]
    return res, src, dst


def test_build_leaves_the_walked_graph_as_the_walk_made_it():
    res, src, dst = _two_nets_cut_between()
    g = res.graph
    g.terms.update({g.losses[1], g.losses[2]})  # loss1 and loss2 are terms of total
    before = copy.deepcopy({f.name: getattr(g, f.name) for f in dataclasses.fields(g) if not f.name.startswith("_")})
    cut = CutInput([src], dst, "numpy", [("detach", "x.py:7"), ("numpy", "x.py:7")], "x.py:7", "x.py:7")
    rep = build(g, [cut], recorded=True, masks=res.masks)
    after = {f.name: getattr(g, f.name) for f in dataclasses.fields(g) if not f.name.startswith("_")}
    assert after == before  # no cut edge, no composite loss written into the walk's graph
    assert type(rep) is ReportData
    assert rep.model is not g and [e[:2] for e in rep.model.cut_edges] == [(src, dst)]
    assert rep.model.composite == {g.losses[0]}  # total reaches its named terms
    assert [c.kind for c in rep.cuts] == ["numpy"]
    # the columns themselves are shared, not copied (a big graph is not duplicated)
    assert rep.model.kind is g.kind and rep.model.src is g.src


def test_build_makes_the_class_it_is_asked_for():
    res, _, _ = _two_nets_cut_between()
    rep = build(res.graph, masks=res.masks, report_type=Report)
    assert isinstance(rep, Report) and rep.cuts == []
