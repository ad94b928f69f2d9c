"""Regions graphprobe can't see inside, and unusual graphs: no false "detached", honest notes."""
from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from graphprobe import probe, trace
from graphprobe.cli import main


def _oracle(loss, named):
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True, retain_graph=True)
    return {n for (n, _), g in zip(named, grads) if g is not None}


def test_reentrant_checkpoint_hides_params_but_they_are_not_detached():
    torch.manual_seed(0)
    inner = nn.Linear(3, 3)
    head = nn.Linear(3, 1)
    opt = torch.optim.SGD(list(inner.parameters()) + list(head.parameters()), lr=0.1)
    x = torch.randn(2, 3, requires_grad=True)
    loss = head(checkpoint(inner, x, use_reentrant=True)).sum()
    r = probe(loss)
    assert [o["kind"] for o in r.opaque] == ["checkpoint"]
    # torch.autograd.grad refuses a reentrant checkpoint, so probe() can't confirm: inner.* are
    # "can't tell" (info), never called detached.
    assert r.opaque[0]["confirmed"] is False
    assert inner.weight.grad is None  # and probe() did not touch the hidden parameters' grads
    inner_findings = {d["name"]: d for d in r.detached if d["kind"] == "unreached"}
    assert set(inner_findings) == {"inner.weight", "inner.bias"}
    assert all(d["severity"] == "info" and "can't tell" in d["reason"] for d in inner_findings.values())
    assert r.ok
    assert "can't see inside" in r.to_text()


def test_reentrant_checkpoint_confirmed_under_render(tmp_path, monkeypatch):
    script = tmp_path / "ckpt.py"
    script.write_text(textwrap.dedent('''
        import torch
        from torch import nn
        from torch.utils.checkpoint import checkpoint

        torch.manual_seed(0)
        inner, head = nn.Linear(3, 3), nn.Linear(3, 1)
        opt = torch.optim.SGD(list(inner.parameters()) + list(head.parameters()), lr=0.1)
        x = torch.randn(2, 3, requires_grad=True)
        for step in range(3):
            opt.zero_grad()
            loss = head(checkpoint(inner, x, use_reentrant=True)).sum()
            loss.backward()
            opt.step()
    '''))
    monkeypatch.chdir(tmp_path)
    import json
    assert main(["render", str(script), "-o", "out.json", "-q"]) == 0
    d = json.loads((tmp_path / "out.json").read_text())
    assert d["opaque"][0]["kind"] == "checkpoint" and d["opaque"][0]["confirmed"] is True
    assert set(d["reaches"]["loss"]) == {"inner.weight", "inner.bias", "head.weight", "head.bias"}
    assert d["detached"] == [] and d["cuts"] == []


def test_reentrant_checkpoint_after_backward_is_unknown_not_detached():
    torch.manual_seed(0)
    inner = nn.Linear(3, 3)
    head = nn.Linear(3, 1)
    opt = torch.optim.SGD(list(inner.parameters()) + list(head.parameters()), lr=0.1)
    x = torch.randn(2, 3, requires_grad=True)
    loss = head(checkpoint(inner, x, use_reentrant=True)).sum()
    loss.backward()  # frees the graph: no confirmation possible any more
    r = probe(loss)
    assert r.opaque and r.opaque[0]["confirmed"] is False
    inner_findings = [d for d in r.detached if d["name"].startswith("inner.")]
    assert inner_findings and all(d["severity"] == "info" and "can't tell" in d["reason"] for d in inner_findings)
    assert not [d for d in r.detached if d["severity"] != "info" and d["kind"] == "unreached"]
    assert r.freed  # the backward freed the graph, and the report says so


def test_non_reentrant_checkpoint_is_transparent():
    torch.manual_seed(0)
    inner = nn.Linear(3, 3)
    x = torch.randn(2, 3)
    loss = checkpoint(inner, x, use_reentrant=False).sum()
    r = probe(loss)
    assert r.opaque == []
    assert set(r.reaches["loss"]) == {"inner.weight", "inner.bias"}


class NoGradForInput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a * 2 + b

    @staticmethod
    def backward(ctx, g):
        return None, g  # nothing flows back to `a`


def test_custom_function_returning_none_is_confirmed():
    torch.manual_seed(0)
    first = nn.Linear(3, 3)
    second = nn.Linear(3, 3)
    opt = torch.optim.SGD(list(first.parameters()) + list(second.parameters()), lr=0.1)
    x = torch.ones(2, 3)
    loss = NoGradForInput.apply(first(x), second(x)).sum()
    unconfirmed = probe(loss)
    assert unconfirmed.opaque[0]["confirmed"] is False and "confirm=True" in unconfirmed.opaque[0]["reason"]
    r = probe(loss, confirm=True)
    assert [o["kind"] for o in r.opaque] == ["custom"]
    named = [(f"first.{n}", p) for n, p in first.named_parameters()] + \
            [(f"second.{n}", p) for n, p in second.named_parameters()]
    assert set(r.reaches["loss"]) == _oracle(loss, named) == {"second.weight", "second.bias"}
    assert {d["name"] for d in r.detached} == {"first.weight", "first.bias"}


def test_custom_function_confirmed_by_param_hooks_under_render(tmp_path, monkeypatch):
    script = tmp_path / "custom.py"
    script.write_text(textwrap.dedent('''
        import torch
        from torch import nn

        class NoGradForInput(torch.autograd.Function):
            @staticmethod
            def forward(ctx, a, b):
                return a * 2 + b

            @staticmethod
            def backward(ctx, g):
                return None, g

        torch.manual_seed(0)
        first, second = nn.Linear(3, 3), nn.Linear(3, 3)
        opt = torch.optim.SGD(list(first.parameters()) + list(second.parameters()), lr=0.1)
        x = torch.ones(2, 3)
        for step in range(3):
            opt.zero_grad()
            loss = NoGradForInput.apply(first(x), second(x)).sum()
            loss.backward()
            opt.step()
    '''))
    monkeypatch.chdir(tmp_path)
    import json
    assert main(["render", str(script), "-o", "out.json", "-q"]) == 0
    d = json.loads((tmp_path / "out.json").read_text())
    assert d["opaque"][0]["confirmed"] is True
    assert set(d["reaches"]["loss"]) == {"second.weight", "second.bias"}
    assert {x["name"] for x in d["detached"]} == {"first.weight", "first.bias"}


@pytest.mark.slow
def test_torch_compile_region():
    torch.manual_seed(0)
    net = nn.Linear(3, 3)
    head = nn.Linear(3, 1)
    import torch._dynamo as dynamo  # binds only `dynamo`: `torch` stays this module's global

    dynamo.reset()
    compiled = torch.compile(net, backend="aot_eager")  # the same CompiledFunctionBackward, no inductor
    x = torch.randn(2, 3)
    loss = head(compiled(x)).sum()
    r = probe(loss, params={"net": net, "head": head})
    assert any(o["kind"] == "compiled" for o in r.opaque)
    assert set(r.reaches["loss"]) == {"net.weight", "net.bias", "head.weight", "head.bias"}


def test_double_backward_views_inplace_hooks_and_dtypes():
    torch.manual_seed(0)
    net = nn.Linear(3, 3)
    x = torch.randn(2, 3, requires_grad=True)
    y = net(x)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    v = y.view(-1)[1:4]
    v = v.clone()
    v.mul_(2)
    y.register_hook(lambda g: g)
    loss = gx.pow(2).sum() + v.sum()
    r = probe(loss)
    named = list((f"net.{n}", p) for n, p in net.named_parameters())
    assert set(r.reaches["loss"]) == _oracle(loss, named)
    for dtype in (torch.float16, torch.bfloat16, torch.complex64):
        w = torch.ones(3, dtype=dtype, requires_grad=True)
        out = (w * w).sum()
        loss2 = out.real if out.is_complex() else out
        rr = probe(loss2, params={"w": w}, names=["loss2"])
        assert rr.reaches["loss2"] == ["w"]
        assert rr.params[0]["shape"] == [3]
        assert rr.to_dict()["nodes"][-1]["dtype"] in ("float16", "bfloat16", "complex64")


def test_sparse_and_bool_tensors():
    w = torch.ones(3, 3, requires_grad=True)
    s = torch.eye(3).to_sparse()
    mask = torch.tensor([True, False, True])
    loss = torch.sparse.mm(s, w)[mask].sum()
    r = probe(loss, params={"w": w})
    assert r.reaches["loss"] == ["w"]


def test_recorder_inside_checkpoint_region_records_nothing_spurious():
    torch.manual_seed(0)
    inner = nn.Linear(3, 3)
    head = nn.Linear(3, 1)
    with trace():
        x = torch.randn(2, 3, requires_grad=True)
        loss = head(checkpoint(inner, x, use_reentrant=True)).sum()
        r = probe(loss)
    assert r.cuts == []  # the checkpoint's no_grad forward is not a cut
    assert not [d for d in r.detached if d["severity"] != "info"]  # x is an input leaf, made on purpose
