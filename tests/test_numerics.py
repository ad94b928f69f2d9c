"""Numerics untouched: a transformer trains bit-identically with and without the recorder."""
from __future__ import annotations

import torch
from torch import nn

import graphprobe


def _train(traced: bool) -> list[torch.Tensor]:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    head = nn.Linear(32, 1)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=1e-3)
    x = torch.randn(4, 8, 32)
    y = torch.randn(4, 8, 1)
    for _ in range(5):
        opt.zero_grad()
        if traced:
            with graphprobe.trace():
                h = model(x)
                scale = h.detach().abs().mean().item()  # a logged statistic, used as a constant
                loss = (head(h) - y).pow(2).mean() * (1.0 + 0.0 * scale)
                graphprobe.probe(loss)
                loss.backward()
                opt.step()
        else:
            h = model(x)
            scale = h.detach().abs().mean().item()
            loss = (head(h) - y).pow(2).mean() * (1.0 + 0.0 * scale)
            loss.backward()
            opt.step()
    return [p.detach().clone() for p in list(model.parameters()) + list(head.parameters())]


def test_transformer_bit_identical_under_trace_and_probe():
    plain = _train(False)
    traced = _train(True)
    assert len(plain) == len(traced)
    assert all(torch.equal(a, b) for a, b in zip(plain, traced))
