"""Collapsed pictures: one node per module above the budget, folded blocks, findings kept."""
from __future__ import annotations

import torch
from torch import nn

from graphprobe import probe, trace
from graphprobe.render.collapse import collapse, visible_count
from graphprobe.render.dot import DotOptions, to_dot


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(torch.relu(self.fc(x)) + x)


class Net(nn.Module):
    def __init__(self, n=12):
        super().__init__()
        self.layers = nn.ModuleList(Block() for _ in range(n))

    def forward(self, x):
        for b in self.layers:
            x = b(x)
        return x


def _cut_report():
    torch.manual_seed(0)
    enc = Net()
    dec = Net()
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()))
    x = torch.randn(2, 4)
    with trace():
        h = enc(x)
        h2 = torch.from_numpy(h.detach().numpy() * 2.0)
        loss = dec(h2).pow(2).mean()
        return probe(loss)


def test_collapse_folds_blocks_and_keeps_cut_and_detached():
    r = _cut_report()
    full = len(r.model)
    c = collapse(r, depth=3)
    labels = [l.split("\n")[0] for l in c.model.label]
    assert "enc.layers.0-11 ×12" in labels and "dec.layers.0-11 ×12" in labels
    # 48 starved parameters, the loss, two folded blocks and the cut's neighbourhood.
    assert len(c.model) <= 48 + 1 + 2 + 3 + 12 < full / 3
    # The cut survives: from enc's last op to the leaf rebuilt from numpy.
    assert len(c.model.cut_edges) == 1
    s, d, _ = c.model.cut_edges[0]
    assert (c.model.module[s] or "").startswith("enc.") and (c.model.module[d] or "").startswith("dec.")
    # Every detached parameter is still its own node, and findings point at valid ids.
    det = [x for x in c.detached if x["kind"] == "unreached"]
    assert len(det) == 48
    for x in det:
        assert c.model.kind[x["node"]] == "param" and c.model.label[x["node"]] == x["name"]


def test_budget_collapses_by_default_and_expand_opens_a_module():
    r = _cut_report()
    dot_full = to_dot(r, DotOptions(budget=None))
    dot_small = to_dot(r, DotOptions(budget=40))
    assert dot_small.count("\n") < dot_full.count("\n")
    assert "collapsed view" in dot_small and "collapsed view" not in dot_full
    assert visible_count(r, 1, expand=("dec",)) > visible_count(r, 1)
    exp = collapse(r, depth=1, expand=("dec",))
    assert any(l == "AddmmBackward0" and m and m.startswith("dec.") for l, m in zip(exp.model.label, exp.model.module))
    # enc stays folded but for the cut's neighbourhood (its last block's ops near the cut).
    enc_ops = [m for l, m in zip(exp.model.label, exp.model.module) if l == "AddmmBackward0" and m and m.startswith("enc.")]
    assert all(m.startswith("enc.layers.11") for m in enc_ops) and len(enc_ops) <= 1


def test_collapsed_picture_renders():
    r = _cut_report()
    svg = r.to_svg(depth=1)
    assert "<svg" in svg and "from_numpy" in svg
