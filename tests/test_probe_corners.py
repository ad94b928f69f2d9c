"""Corner cases of probe(): the freed check, a leaf given as a loss, loss names, np.array keywords, RNG state."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import graphprobe
from graphprobe import probe, trace


def test_freed_check_runs_no_unpack_hook_and_no_forward_again():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    calls = []

    def block(a):
        calls.append(1)
        return bn(a).relu()

    y = checkpoint(block, torch.randn(4, 3, requires_grad=True), use_reentrant=False).sum()
    before = (len(calls), bn.num_batches_tracked.item())
    r = probe(y)
    assert (len(calls), bn.num_batches_tracked.item()) == before
    assert r.freed == []


def test_freed_found_on_nodes_whose_optional_saved_slots_differ():
    torch.manual_seed(0)
    l1, l2 = nn.Linear(3, 3), nn.Linear(3, 3)
    l2.requires_grad_(False)  # l2's addmm saves mat1 only; l1's saves mat2 only
    loss = l2(l1(torch.randn(2, 3))).sum()
    loss.backward()
    freed_ops = [f["op"] for f in probe(loss).freed]
    assert freed_ops.count("AddmmBackward0") == 2


def test_a_leaf_given_as_a_loss_and_used_in_another_is_one_node():
    p = torch.ones(3, requires_grad=True)
    for losses in ((p, (p * 3).sum()), ((p * 3).sum(), p)):
        r = probe(*losses, params={"p": p}, names=["a", "b"])
        assert [x["name"] for x in r.params] == ["p"]
        assert sorted(r.params[0]["reached_by"]) == ["a", "b"]


def test_loss_names_never_collide_and_must_be_strings():
    w = torch.ones(2, requires_grad=True)
    r = probe((w * 1).sum(), (w * 2).sum(), (w * 3).sum(), params={"w": w}, names=["a", "a", "a#2"])
    assert len({l["name"] for l in r.losses}) == 3 and len(r.reaches) == 3
    with pytest.raises(graphprobe.ProbeInputError, match="strings"):
        probe((w * 1).sum(), names=[1])
    with pytest.raises(graphprobe.ProbeInputError, match="params="):
        probe((w * 1).sum(), params=5)


def test_np_array_with_keyword_object_under_trace():
    with trace():
        h = torch.ones(2, requires_grad=True) * 2
        a = np.array(object=h.detach().numpy())
        b = np.asarray(a=[1.0, 2.0])
    assert a.tolist() == [2.0, 2.0] and b.tolist() == [1.0, 2.0]


def test_confirmation_keeps_rng_state():
    class Noisy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g * torch.rand(()) * 0 + g * 2

    net = nn.Linear(3, 3)
    loss = Noisy.apply(net(torch.ones(2, 3))).sum()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    r = probe(loss, confirm=True)
    assert torch.equal(torch.get_rng_state(), state)
    assert r.opaque[0]["confirmed"] is True
