"""probe() and every analysis on the seed's four cases, built in the test's own frame."""
from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest
import torch
from torch import nn

import graphprobe
from graphprobe import probe, trace
from graphprobe import analysis as A

X = torch.ones(2, 3) * 0.2
T1 = torch.ones(2, 3) * 0.5
T2 = torch.ones(2, 3)
mse = nn.MSELoss()


def test_case1_one_component_and_net1_shared(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    tmp = net1(X)
    loss1 = mse(tmp, T1)
    loss2 = mse(net2(tmp), T2)
    r = probe(loss1, loss2)
    assert [l["name"] for l in r.losses] == ["loss1", "loss2"]
    assert sorted(r.reaches["loss1"]) == ["net1.bias", "net1.weight"]
    assert sorted(r.reaches["loss2"]) == ["net1.bias", "net1.weight", "net2.bias", "net2.weight"]
    assert len(r.components) == 1
    assert sorted(r.components[0]["losses"]) == ["loss1", "loss2"]
    assert len(r.shared) == 1
    assert sorted(r.shared[0]["params"]) == ["net1.bias", "net1.weight"]
    assert r.shared[0]["losses"] == ["loss1", "loss2"]
    assert r.detached == [] and r.cuts == [] and r.freed == []
    assert r.ok
    params = {p["name"]: p for p in r.params}
    assert params["net1.weight"]["optimizers"] == ["opt1"]
    assert params["net2.bias"]["module"] == "net2"
    assert params["net1.weight"]["shape"] == [3, 3]
    assert "2 losses, 1 component" in r.verdict()


def test_case1_summed_loss_reaches_all_four(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    tmp = net1(X)
    tol_loss = mse(tmp, T1) + mse(net2(tmp), T2)
    r = probe(tol_loss)
    assert sorted(r.reaches["tol_loss"]) == ["net1.bias", "net1.weight", "net2.bias", "net2.weight"]


def test_case2_freed_after_first_backward(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    tmp = net1(X)
    loss1 = mse(tmp, T1)
    loss2 = mse(net2(tmp), T2)
    loss1.backward()
    r = probe(loss1, loss2)
    freed = {(f["op"], f["module"]) for f in r.freed}
    assert ("AddmmBackward0", "net1") in freed
    net1_freed = [f for f in r.freed if f["module"] == "net1"]
    assert all("loss2" in f["losses"] for f in net1_freed)
    assert all(f["severity"] == "error" for f in r.freed)
    assert "retain_graph=True" in r.freed[0]["fix"]
    # net2's nodes were not freed: loss1's backward never ran through them.
    assert not any(f["module"] == "net2" for f in r.freed)
    with pytest.raises(RuntimeError, match="second time"):
        loss2.backward()


def test_case2_retain_graph_frees_nothing(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    tmp = net1(X)
    loss1 = mse(tmp, T1)
    loss2 = mse(net2(tmp), T2)
    loss1.backward(retain_graph=True)
    assert probe(loss1, loss2).freed == []


def test_case3_mul_keeps_one_graph(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    tmp = net1(X)
    loss1 = mse(tmp, T1)
    tmp = tmp * 0.5
    loss2 = mse(net2(tmp), T2)
    r = probe(loss1, loss2)
    assert len(r.components) == 1
    g = r.graph
    mul = [n for n, d in g.nodes(data=True) if d.get("op") == "MulBackward0"]
    assert len(mul) == 1
    # MulBackward0 joins net1's output to net2's input.
    preds = {g.nodes[p].get("module") for p in g.predecessors(mul[0])}
    succs = {g.nodes[s].get("module") for s in g.successors(mul[0])}
    assert preds == {"net1"} and "net2" in succs
    assert sorted(r.reaches["loss2"]) == ["net1.bias", "net1.weight", "net2.bias", "net2.weight"]


def _case4(net1, net2):
    tmp = net1(X)
    loss1 = mse(tmp, T1)
    tmp = torch.from_numpy(tmp.detach().numpy() * 0.5)
    tmp.requires_grad_(True)
    loss2 = mse(net2(tmp), T2)
    return loss1, loss2, tmp


def test_case4_two_components_and_reentry_leaf_without_recorder(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    loss1, loss2, tmp = _case4(net1, net2)
    r = probe(loss1, loss2)
    assert len(r.components) == 2
    assert sorted(r.reaches["loss2"]) == ["net2.bias", "net2.weight"]
    leaves = [d for d in r.detached if d["kind"] == "reentry_leaf"]
    assert len(leaves) == 1 and leaves[0]["name"] == "tmp"
    assert leaves[0]["severity"] == "warning"  # without the recorder it is a strong hint, not proof
    assert "cut" in leaves[0]["reason"]


def test_case4_cut_edge_with_recorder(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    with trace():
        loss1, loss2, tmp = _case4(net1, net2)
        r = probe(loss1, loss2)
    assert len(r.cuts) == 1
    cut = r.cuts[0]
    assert cut["kind"] == "numpy"
    assert [s["op"] for s in cut["chain"]] == ["detach", "numpy", "× 0.5", "from_numpy"]
    assert cut["location"].endswith(f"test_probe_seed.py:{_case4.__code__.co_firstlineno + 3}")
    assert cut["from"]["module"] == "net1" and cut["from"]["op"] == "AddmmBackward0"
    assert cut["to"]["module"] == "net2"
    assert cut["blocked"] == [{"loss": "loss2", "params": ["net1.weight", "net1.bias"]}]
    assert cut["severity"] == "error"
    assert r.model.cut_edges == [(cut["from"]["node"], cut["to"]["node"], 0)]
    leaf = [d for d in r.detached if d["kind"] == "reentry_leaf"][0]
    assert leaf["severity"] == "error"
    assert not r.ok


def test_case4b_unreached_params_held_by_opt1(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    with trace():
        loss1, loss2, tmp = _case4(net1, net2)
        r = probe(loss2)
    un = {d["name"]: d for d in r.detached if d["kind"] == "unreached"}
    assert set(un) == {"net1.weight", "net1.bias"}
    assert un["net1.weight"]["optimizers"] == ["opt1"]
    assert un["net1.weight"]["severity"] == "error"
    assert "cut at" in un["net1.weight"]["reason"]
    v = r.verdict()
    assert v.startswith("1 loss, 2 components: numpy cut at test_probe_seed.py:")
    assert "loss2 reaches net2 only; net1.weight, net1.bias get no gradient from it" in v


def test_case4b_training_leaves_net1_unchanged(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    before = net1(X).detach().clone()
    for _ in range(20):
        opt1.zero_grad(); opt2.zero_grad()
        loss1, loss2, tmp = _case4(net1, net2)
        loss2.backward()
        opt1.step(); opt2.step()
    assert torch.equal(net1(X).detach(), before)
    # ... which is what probe says: no loss reaches net1.
    loss1, loss2, tmp = _case4(net1, net2)
    r = probe(loss2)
    assert {d["name"] for d in r.detached if d["kind"] == "unreached"} == {"net1.weight", "net1.bias"}


def test_frozen_listed_apart_never_detached():
    torch.manual_seed(0)
    enc = nn.Linear(3, 3)
    head = nn.Linear(3, 1)
    enc.requires_grad_(False)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    loss = head(enc(X)).sum()
    r = probe(loss)
    assert {f["name"] for f in r.frozen} == {"enc.weight", "enc.bias"}
    assert r.detached == []
    assert r.ok


def test_names_from_params_and_names_arguments(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    out = net2(net1(X)).sum()
    r = probe(out, params={"first": net1, "second": net2}, names=["total"])
    assert sorted(r.reaches["total"]) == ["first.bias", "first.weight", "second.bias", "second.weight"]
    r2 = probe(out, params=[net1])
    assert sorted(r2.reaches["out"]) == ["net1.bias", "net1.weight", "net2.bias", "net2.weight"]
    assert {p["name"]: p["optimizers"] for p in r2.params}["net2.weight"] == ["opt2"]


def test_outermost_module_names_first():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.coarse = nn.Linear(3, 3)
            self.fine = nn.Linear(3, 1)

        def forward(self, x):
            return self.fine(self.coarse(x))

    coarse_alias = None
    model = Model()
    coarse_alias = model.coarse  # noqa: F841  (found too, but model's name wins)
    loss = model(X).sum()
    r = probe(loss)
    assert sorted(r.reaches["loss"]) == ["model.coarse.bias", "model.coarse.weight",
                                         "model.fine.bias", "model.fine.weight"]
    mods = {p["module"] for p in r.params}
    assert mods == {"model.coarse", "model.fine"}


def test_bad_input_messages():
    with pytest.raises(graphprobe.ProbeInputError, match="at least one loss"):
        probe()
    with pytest.raises(graphprobe.ProbeInputError, match="float"):
        probe(1.5)
    with torch.no_grad():
        t = (torch.ones(2, requires_grad=True) * 2).sum()
    with pytest.raises(graphprobe.ProbeInputError, match="no_grad"):
        probe(t)
    # A GraphprobeError, never an AttributeError.
    with pytest.raises(graphprobe.GraphprobeError):
        probe("loss")


def test_json_contract(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    with trace():
        loss1, loss2, tmp = _case4(net1, net2)
        r = probe(loss1, loss2)
    d = json.loads(r.to_json())
    assert d["schema"] == 1
    for key in ("losses", "params", "components", "shared", "detached", "cuts", "errors", "nodes", "edges"):
        assert key in d
    assert set(d["losses"][0]) >= {"name", "location"}
    assert set(d["params"][0]) >= {"name", "shape", "module", "optimizers", "reached_by"}
    assert set(d["detached"][0]) >= {"name", "kind", "severity", "optimizers", "reason"}
    assert set(d["cuts"][0]) >= {"kind", "chain", "location", "from", "to", "blocked", "severity"}
    assert any(e["kind"] == "cut" for e in d["edges"])
    kinds = {n["kind"] for n in d["nodes"]}
    assert kinds <= set(graphprobe.model.graph.NODE_KINDS)
    assert {"loss", "op", "param", "reentry_leaf"} <= kinds


def test_stable_ids_same_program_same_json(seed_nets):
    net1, net2, opt1, opt2 = seed_nets

    def once():
        tmp = net1(X)
        loss1 = mse(tmp, T1)
        loss2 = mse(net2(tmp), T2)
        return probe(loss1, loss2, names=["loss1", "loss2"]).to_dict()

    a, b = once(), once()
    assert a["nodes"] == b["nodes"] and a["edges"] == b["edges"]


def test_no_strong_reference_kept(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    refs = []

    def step():
        # A function frame: CPython's own f_locals snapshot dies with it, so what stays alive
        # afterwards is what graphprobe holds.
        tmp = net1(X)
        loss = mse(net2(tmp), T2)
        refs.extend([weakref.ref(tmp), weakref.ref(loss)])
        with trace():
            return probe(loss)

    r = step()
    gc.collect()
    assert refs and all(ref() is None for ref in refs)
    assert r.reaches["loss"]  # the report still reads


def test_networkx_graph_schema(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    loss = mse(net2(net1(X)), T2)
    g = probe(loss).graph
    loss_nodes = [n for n, d in g.nodes(data=True) if d["kind"] == "loss"]
    assert len(loss_nodes) == 1 and g.out_degree(loss_nodes[0]) == 0
    params = [n for n, d in g.nodes(data=True) if d["kind"] == "param"]
    assert all(g.in_degree(p) == 0 for p in params)  # data flows param -> op -> loss
    assert all(g.nodes[p]["shape"] is not None for p in params)
    assert all(d["kind"] == "data" for *_, d in g.edges(data=True))


def test_analysis_functions_directly(seed_nets):
    net1, net2, opt1, opt2 = seed_nets
    tmp = net1(X)
    loss1 = mse(tmp, T1)
    loss2 = mse(net2(tmp), T2)
    g = probe(loss1, loss2).model
    masks = A.loss_masks(g)
    assert masks[g.losses[0]] == 1 and masks[g.losses[1]] == 2
    assert A.number_of_components(g) == 1
    assert A.unreached(g, masks) == []
    assert len(A.shared(g, masks)) == 1
