"""The fast paths of probe() and the DOT writer give what the general ones give.

Each shortcut (the module tree walked once, the freed check's first read, the kind index grown
by its tail, the vectorised module inference, the DOT quoting and boxes) is checked against
the code it stands in for, on the cases that would break it: shared and tied modules, a class
that overrides ``named_modules`` / ``named_parameters``, FSDP2-like state, freed graphs, nodes
added after the walk, labels with line breaks and control characters.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import graphprobe
from graphprobe.record import names as N
from graphprobe.walk import walker as W
from graphprobe.model.graph import ProbeGraph, TensorMeta
from graphprobe.render.dot import _ESCAPES, quote


def _transformer(layers: int = 2) -> nn.Module:
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class _Tied(nn.Module):
    """A shared submodule (twice in the tree), a tied weight, a None child and a None bias."""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(4, 4)
        self.a = nn.Sequential(shared, nn.ReLU(), shared)
        self.b = nn.Linear(4, 4, bias=False)
        self.c = nn.Linear(4, 4)
        self.c.weight = self.b.weight  # tied
        self.register_module("gone", None)
        self.deep = nn.ModuleDict({"x": nn.ModuleList([nn.Linear(4, 2), self.a])})


class _OwnModules(nn.Module):
    """Overrides named_modules (hides ``hidden``): the fast walk must defer to it."""

    def __init__(self) -> None:
        super().__init__()
        self.shown = nn.Linear(2, 2)
        self.hidden = nn.Linear(2, 2)

    def named_modules(self, memo: Any = None, prefix: str = "", remove_duplicate: bool = True
                      ) -> Iterator[tuple[str, nn.Module]]:
        yield prefix, self
        yield prefix + ("." if prefix else "") + "shown", self.shown


class _OwnParams(nn.Module):
    """Overrides named_parameters (renames them), as FSDP1 does."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
                         ) -> Iterator[tuple[str, nn.Parameter]]:
        for name, p in super().named_parameters(prefix, recurse, remove_duplicate):
            yield "renamed_" + name, p


@pytest.mark.parametrize("make", [_transformer, _Tied, _OwnModules, _OwnParams,
                                  lambda: nn.Sequential(_OwnModules(), _Tied())])
def test_module_tree_is_torchs(make: Any) -> None:
    mod = make()
    tree = N._named_modules(mod)
    assert [(p, id(m)) for p, m in tree] == [(p, id(m)) for p, m in mod.named_modules()]
    params = N._named_parameters(mod, tree)
    assert [(p, id(t)) for p, t in params] == [(p, id(t)) for p, t in mod.named_parameters()]


def test_names_of_tied_and_overridden_modules() -> None:
    net = _Tied()
    known = N.collect_known(None, {"net": net})
    assert [i.name for i in known.params.values()] == [
        "net.a.0.weight", "net.a.0.bias", "net.b.weight", "net.c.bias", "net.deep.x.0.weight",
        "net.deep.x.0.bias"]
    own = N.collect_known(None, {"m": _OwnModules()})
    assert [i.name for i in own.params.values()] == ["m.shown.weight", "m.shown.bias"]
    renamed = N.collect_known(None, {"m": _OwnParams()})
    assert [i.name for i in renamed.params.values()] == ["m.renamed_lin.weight", "m.renamed_lin.bias"]


class _FakeFSDP(nn.Module):
    """Looks like an FSDP2 module to unsharded_twins: its state holds a sharded/unsharded pair."""

    def __init__(self, unsharded: nn.Parameter) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        fp = type("FP", (), {"_unsharded_param": unsharded, "sharded_param": self.lin.weight})()
        group = type("G", (), {"fsdp_params": [fp]})()
        self._state = type("S", (), {"_fsdp_param_group": group})()

    @staticmethod
    def _get_fsdp_state(self: "_FakeFSDP") -> Any:
        return self._state


def test_fsdp_twins_still_read_when_a_class_has_fsdp_state() -> None:
    unsharded = nn.Parameter(torch.ones(3, 3))
    known = N.collect_known(None, {"model": nn.Sequential(_FakeFSDP(unsharded))})
    # The graph holds the unsharded twin: it takes the sharded one's name.
    assert known.params[id(unsharded)].name == "model.0.lin.weight"
    assert id(unsharded) in known.twins


def test_tensor_meta_cache_keeps_dtype_and_device_apart() -> None:
    a = TensorMeta.of(torch.ones(2, 3))
    b = TensorMeta.of(torch.ones(2, 3, dtype=torch.float64))
    c = TensorMeta.of(torch.ones((), dtype=torch.int64, device="meta"))
    d = TensorMeta.of(torch.ones(2, 3))
    assert (a.shape, a.dtype, a.device) == ((2, 3), "float32", "cpu")
    assert (b.dtype, b.device) == ("float64", "cpu")
    assert (c.shape, c.dtype, c.device) == ((), "int64", "meta")
    assert a == d and all(type(s) is int for s in a.shape)


def _freed_by_every_read(losses: list[torch.Tensor]) -> set[int]:
    res = W.walk([W.Root(f"l{i}", t) for i, t in enumerate(losses)], N.Known())
    return {v for v, fn in enumerate(res.fn_of) if res.graph.kind[v] == "op" and W.is_freed(fn)}


def test_freed_shortcut_agrees_with_is_freed() -> None:
    w = nn.Parameter(torch.randn(4, 4))
    x = torch.randn(3, 4)
    shared = (x @ w).tanh()
    loss1 = shared.exp().sum()
    loss2 = (shared * 2).sigmoid().mean() + w.sum()  # SumBackward saves nothing
    live = W.walk([W.Root("loss1", loss1), W.Root("loss2", loss2)], N.Known())
    assert live.graph.freed == set() == _freed_by_every_read([loss1, loss2])
    loss1.backward()
    after = W.walk([W.Root("loss1", loss1), W.Root("loss2", loss2)], N.Known())
    expected = _freed_by_every_read([loss1, loss2])
    assert after.graph.freed == expected and expected  # loss1's part is freed, loss2's own is not
    assert any(after.graph.kind[v] == "op" and v not in expected for v in range(len(after.graph.kind)))


def test_kind_index_grows_with_nodes_added_after_the_walk() -> None:
    net = nn.Linear(3, 1)
    unused = nn.Linear(3, 3)
    loss = net(torch.ones(2, 3)).sum()
    rep = graphprobe.probe(loss, params={"net": net, "unused": unused})
    g = rep.model
    for kinds in [("param",), ("loss",), ("op",), ("param", "loss"), ("reentry_leaf",), ("op", "param")]:
        assert g.nodes_of_kind(*kinds) == [i for i, k in enumerate(g.kind) if k in kinds]
    new = g.add_node("reentry_leaf", "tmp")
    assert g.nodes_of_kind("reentry_leaf") == [new]
    assert g.nodes_of_kind("param") == [i for i, k in enumerate(g.kind) if k == "param"]
    # A shorter graph than the index (columns rebuilt by hand) is indexed again.
    fresh = ProbeGraph()
    fresh.add_node("loss", "l")
    fresh._kind_index = (5, {"param": [3]})
    assert fresh.nodes_of_kind("param") == [] and fresh.nodes_of_kind("loss") == [0]


def _infer_by_edges(g: ProbeGraph) -> list[str | None]:
    """What _infer_modules does, one edge at a time (its earlier, plain form)."""
    mods = list(g.module)
    params = {v for v in range(len(g.kind)) if g.kind[v] == "param" and mods[v] is not None}
    cand: dict[int, str | None] = {}
    for s, d in zip(g.src, g.dst):
        if s in params and g.kind[d] == "op" and mods[d] is None:
            prev = cand.get(d, mods[s])
            cand[d] = mods[s] if prev == mods[s] else None
    for d, m in cand.items():
        if m is not None:
            mods[d] = m
    return mods


def test_module_inference_matches_the_edge_by_edge_rule() -> None:
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    x = torch.randn(2, 3)
    mixed = x @ a.weight.t() + b.bias  # reads params of two modules: no module
    loss = (a(x) + b(mixed) + mixed * a.bias).sum()
    res = W.walk([W.Root("loss", loss)], N.collect_known(None, {"a": a, "b": b}))
    g = res.graph
    got = list(g.module)
    g.module[:] = [m if g.kind[v] == "param" else None for v, m in enumerate(g.module)]
    assert got == _infer_by_edges(g)
    assert {m for m in got if m} == {"a", "b"} and None in got


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab×\n\r\t\"\\ \x01\x7f\u2028é")), max_size=12))
def test_quote_is_the_translate_escape(text: str) -> None:
    assert quote(text) == '"' + text.replace("\r\n", "\n").translate(_ESCAPES) + '"'


def test_dot_of_every_node_names_each_node_once_in_its_box() -> None:
    model = _transformer(2)
    loss = model(torch.randn(2, 3, 16)).pow(2).mean()
    rep = graphprobe.probe(loss, params={"model": model})
    dot = rep.to_dot(budget=None)
    g = rep.model
    for v in range(len(g.kind)):
        assert dot.count(f"\n    n{v} [") + dot.count(f"\n  n{v} [") + dot.count(f"\n      n{v} [") \
            + dot.count(f"\n        n{v} [") + dot.count(f"\n          n{v} [") == 1
    assert "subgraph cluster_" in dot and 'label="model.layers.0.linear1.weight\\n32×16"' in dot


_NO_OPTIMIZER_YET = r"""
import json, torch
from torch import nn
import graphprobe
from graphprobe.record.names import _optimizers_may_exist

net = nn.Linear(3, 1)
loss = net(torch.ones(2, 3)).sum()
before = _optimizers_may_exist()
first = graphprobe.probe(loss, params={"net": net}).params[0]["optimizers"]

class Mine(torch.optim.Optimizer):  # never calls Optimizer.__init__, so never marks its step
    def __init__(self, params):
        self.param_groups = [{"params": list(params)}]
        self.state = {}
        self.defaults = {}

mine = Mine(net.parameters())
custom = _optimizers_may_exist()
opt = torch.optim.SGD(net.parameters(), lr=0.1)
second = graphprobe.probe(loss, params={"net": net}).params[0]["optimizers"]
print(json.dumps([before, first, custom, second]))
"""


def test_optimizer_search_skipped_only_while_none_can_exist() -> None:
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _NO_OPTIMIZER_YET], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    before, first, custom, second = json.loads(out.stdout.strip().splitlines()[-1])
    assert before is False and first == []
    assert custom is True  # a class from outside torch: it may hold parameters unmarked
    assert second == ["mine", "opt"]
