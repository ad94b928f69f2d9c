"""``Report.graph``: the autograd graph alone, agreeing with the report; cuts in their own view;
GraphML-safe attributes; the verdict, losses and schema version in ``G.graph``."""
from __future__ import annotations

import json

import networkx as nx
import pytest
import torch

import graphprobe
from graphprobe.model.nxview import data_edges

from conftest import other_samples

# Every single-process sample but the slow ones (gpt2 imports transformers; gru walks 3000 steps).
FAST = ["case1_sum.py", "case2_backward_twice.py", "case3_mul.py", "case4_numpy.py", "case4b_only_loss2.py",
        "cut_item_tensor.py", "cut_detach.py", "cut_no_grad.py", "gan_detach.py", "clean_pipeline.py"]

REST = other_samples(FAST)


def _loss_node(G, name):
    (n,) = [v for v, d in G.nodes(data=True) if d["kind"] == "loss" and d.get("name", d["label"]) == name]
    return n


def _param_labels(G, nodes):
    return {G.nodes[v]["label"] for v in nodes if G.nodes[v]["kind"] == "param"}


def _agrees(r) -> None:
    """Every networkx answer that the report also gives is the same answer."""
    G = r.graph
    assert not any(d["kind"] == "cut" for _, _, d in G.edges(data=True))
    for lo in r.losses:
        got = _param_labels(G, nx.ancestors(G, lo["node"]))
        assert got == set(r.reaches[lo["name"]]), (lo["name"], got, r.reaches[lo["name"]])
    # The weakly connected components that hold a loss are the report's components with a loss.
    frozen = {f["name"] for f in r.frozen}
    mine = []
    for comp in nx.weakly_connected_components(G):
        losses = sorted(G.nodes[v]["label"] for v in comp if G.nodes[v]["kind"] == "loss")
        if losses:
            mine.append((losses, sorted(_param_labels(G, comp) - frozen)))
    theirs = [(sorted(c["losses"]), sorted(c["params"])) for c in r.components if c["losses"]]
    assert sorted(mine) == sorted(theirs)


def test_case4_two_components_and_ancestors_agree_with_reaches(sample_report):
    r = sample_report("case4_numpy.py")
    G = r.graph
    assert nx.number_weakly_connected_components(G) == 2 == len(r.components)
    loss2 = _loss_node(G, "loss2")
    assert _param_labels(G, nx.ancestors(G, loss2)) == set(r.reaches["loss2"]) == {"net2.weight", "net2.bias"}
    _agrees(r)
    # The cut is in the other view, and only there.
    W = r.graph_with_cuts
    cuts = [(s, d, a) for s, d, a in W.edges(data=True) if a["kind"] == "cut"]
    assert len(cuts) == len(r.model.cut_edges) == 1
    s, d, a = cuts[0]
    assert a["cut_kind"] == "numpy" and a["severity"] == "error" and a["location"].endswith("case4_numpy.py:26")
    assert nx.number_weakly_connected_components(W) == 1
    plain = data_edges(W)
    assert set(plain.edges) == set(G.edges) and set(plain.nodes) == set(G.nodes)


def test_graph_attributes_carry_verdict_losses_and_schema(sample_report):
    r = sample_report("case4_numpy.py")
    g = r.graph.graph
    assert g["schema"] == 1 and g["verdict"] == r.verdict() and g["ok"] is False
    assert json.loads(g["losses"]) == ["loss1", "loss2"]
    assert [r.graph.nodes[v]["label"] for v in json.loads(g["loss_nodes"])] == ["loss1", "loss2"]
    assert g["errors"] == r.counts()["error"] >= 1


@pytest.mark.parametrize("name", FAST)
def test_graphml_round_trip(sample_report, tmp_path, name):
    r = sample_report(name)
    for G in (r.graph, r.graph_with_cuts):
        for _, d in G.nodes(data=True):
            assert all(v is not None and not isinstance(v, (list, dict, tuple)) for v in d.values()), d
        path = tmp_path / "g.graphml"
        nx.write_graphml(G, path)
        back = nx.read_graphml(path, node_type=int)
        assert back.number_of_nodes() == G.number_of_nodes() and back.number_of_edges() == G.number_of_edges()
        assert back.graph["verdict"] == r.verdict()
        assert len({frozenset(d) for _, d in G.nodes(data=True)}) == 1  # every node has every key
        shaped = [v for v, d in G.nodes(data=True) if d["shape"]]
        assert shaped and all(json.loads(back.nodes[v]["shape"]) == r.model.node_attrs(v)["shape"] for v in shaped)


@pytest.mark.parametrize("name", FAST)
def test_networkx_agrees_with_the_report(sample_report, name):
    _agrees(sample_report(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", REST)
def test_networkx_agrees_with_the_report_on_every_sample(sample_report, name):
    _agrees(sample_report(name))


def test_ancestors_agree_with_the_autograd_oracle():
    # Not only with the report: with torch.autograd.grad, on a shared trunk and two heads.
    torch.manual_seed(0)
    trunk, h1, h2 = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    z = trunk(torch.ones(2, 3))
    l1, l2 = h1(z).sum(), h2(z.detach()).sum()
    params = {"trunk": trunk, "h1": h1, "h2": h2}
    r = graphprobe.probe(l1, l2, names=["l1", "l2"], params=params)
    G = r.graph
    named = {f"{m}.{n}": p for m, mod in params.items() for n, p in mod.named_parameters()}
    for name, loss in (("l1", l1), ("l2", l2)):
        grads = torch.autograd.grad(loss, list(named.values()), allow_unused=True, retain_graph=True)
        oracle = {n for n, gr in zip(named, grads) if gr is not None}
        assert _param_labels(G, nx.ancestors(G, _loss_node(G, name))) == oracle
