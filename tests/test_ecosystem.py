"""Notebook display and assert_grad_flow."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import graphprobe
from graphprobe import assert_grad_flow, probe, trace


def _nets():
    torch.manual_seed(0)
    return nn.Linear(3, 3), nn.Linear(3, 3)


def test_notebook_reprs():
    net1, net2 = _nets()
    loss = net2(net1(torch.ones(2, 3))).sum()
    r = probe(loss)
    svg = r._repr_svg_()
    assert svg and "<svg" in svg and "net1.weight" in svg
    html = r._repr_html_()
    assert html.startswith('<div class="graphprobe">') and "<svg" in html and "<?xml" not in html
    assert "every known parameter gets a gradient" in html
    bundle = r._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "image/svg+xml"}
    assert bundle["text/plain"].startswith("graphprobe: 1 loss")

    class Printer:
        def __init__(self):
            self.out = []

        def text(self, s):
            self.out.append(s)

    p = Printer()
    r._repr_pretty_(p, False)
    assert p.out[0].startswith("graphprobe:")


def test_notebook_repr_without_engine_falls_back_to_text(monkeypatch):
    import graphprobe.render.engine as eng

    monkeypatch.setenv(eng.ENGINE_ENV, "/nonexistent/dot")
    net1, net2 = _nets()
    r = probe(net2(net1(torch.ones(2, 3))).sum())
    assert r._repr_svg_() is None
    assert set(r._repr_mimebundle_()) == {"text/plain", "text/html"}


def test_assert_grad_flow_passes_silently():
    net1, net2 = _nets()
    opt = torch.optim.SGD(list(net1.parameters()) + list(net2.parameters()), lr=0.1)
    loss = net2(net1(torch.ones(2, 3))).sum()
    assert assert_grad_flow(loss, net1, net2) is None
    assert assert_grad_flow(loss) is None
    assert assert_grad_flow(loss, net1.weight) is None


def test_assert_grad_flow_names_starved_params_optimizer_and_cut():
    net1, net2 = _nets()
    opt1 = torch.optim.Adam(net1.parameters())
    opt2 = torch.optim.Adam(net2.parameters())
    with trace():
        tmp = net1(torch.ones(2, 3))
        tmp = torch.from_numpy(tmp.detach().numpy() * 0.5)  # the cut
        loss = net2(tmp).sum()
        with pytest.raises(AssertionError) as e:
            assert_grad_flow(loss, net1, net2)
    msg = str(e.value)
    assert "gradient does not reach 2 parameters" in msg
    assert "net1.weight (held by opt1)" in msg and "net1.bias (held by opt1)" in msg
    assert "net2" not in msg
    assert "cut at test_ecosystem.py:" in msg and "detach -> numpy -> × 0.5 -> from_numpy" in msg


def test_assert_grad_flow_without_trace_says_how_to_find_the_cut():
    net1, net2 = _nets()
    tmp = net1(torch.ones(2, 3)).detach()
    loss = net2(tmp).sum()
    with pytest.raises(AssertionError, match="graphprobe.trace"):
        assert_grad_flow(loss, net1)


def test_assert_grad_flow_ignores_frozen_and_rejects_bad_targets():
    net1, net2 = _nets()
    net1.requires_grad_(False)
    loss = net2(net1(torch.ones(2, 3))).sum()
    assert_grad_flow(loss, net1, net2)
    with pytest.raises(graphprobe.GraphprobeError):
        assert_grad_flow(loss, "net1")
    with pytest.raises(graphprobe.GraphprobeError):
        assert_grad_flow(1.0)
