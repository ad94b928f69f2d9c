"""FSDP2 (``fully_shard``) on CPU with gloo: a report per rank under torchrun, parameters named
and shaped as in the unsharded module, the unused head found as with DDP; and, in one process,
the unsharded twins graphprobe names (the leaves of the autograd graph)."""
from __future__ import annotations

import json
import os
import socket
import sys

import pytest
import torch
from torch import nn

import graphprobe
from graphprobe.record.fsdp import unsharded_twins

from test_ddp import SAMPLES, _tool, _torchrun

fsdp = pytest.importorskip("torch.distributed.fsdp", reason="this torch has no torch.distributed.fsdp")
if not hasattr(fsdp, "fully_shard") or not torch.distributed.is_available():
    pytest.skip("this torch has no FSDP2 (torch.distributed.fsdp.fully_shard)", allow_module_level=True)

AUX = ["model.aux_head.weight", "model.aux_head.bias"]
ALL = ["model.trunk.weight", "model.trunk.bias", "model.head.weight", "model.head.bias", *AUX]
SHAPES = [[8, 4], [8], [1, 8], [1], [2, 8], [2]]


@pytest.mark.slow  # two ranks of torch under torchrun: about 10 s
def test_torchrun_fsdp2_report_per_rank(tmp_path):
    p = _torchrun(tmp_path, _tool("graphprobe"), "render", str(SAMPLES / "fsdp_script.py"),
                  "-o", str(tmp_path / "out.json"))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert sorted(os.listdir(tmp_path)) == ["out.rank0.json", "out.rank1.json"]
    for rank in (0, 1):
        d = json.loads((tmp_path / f"out.rank{rank}.json").read_text(encoding="utf-8"))
        assert [x["name"] for x in d["params"]] == ALL
        assert [x["shape"] for x in d["params"]] == SHAPES  # the full shapes, not a rank's shard
        assert all(x["optimizers"] == ["opt"] for x in d["params"])
        un = {x["name"]: x for x in d["detached"] if x["kind"] == "unreached"}
        assert sorted(un) == sorted(AUX) and all(x["severity"] == "error" for x in un.values())
        assert sorted(d["reaches"]["loss"]) == sorted(ALL[:4])
        assert d["errors"] == [] and d["findings"]["error"] == 2
        assert d["verdict"].endswith("model.aux_head.weight, model.aux_head.bias get no gradient from it")


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(4, 8)
        self.head = nn.Linear(8, 1)
        self.aux_head = nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.trunk(x))
        return self.head(h), self.aux_head(h)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_rank(monkeypatch):
    """A one-rank gloo group in this process, torn down after the test."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_fsdp2_parameters_named_as_unsharded_and_checked_by_the_oracle(one_rank):
    torch.manual_seed(0)
    model = _Net()
    fsdp.fully_shard(model.trunk)
    fsdp.fully_shard(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    out, aux = model(torch.rand(8, 4))
    loss = out.pow(2).mean()
    twins = unsharded_twins(model)
    sharded = list(model.parameters())
    assert len({id(t) for t in twins.values()}) == 6
    r = graphprobe.probe(loss, names=["loss"])
    assert [p["name"] for p in r.params] == ALL and [p["shape"] for p in r.params] == SHAPES
    assert all(p["optimizers"] == ["opt"] for p in r.params)
    # The oracle, on the tensors the graph holds (the sharded ones never take part in autograd).
    leaves = [twins[id(p)] for p in sharded]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True, retain_graph=True)
    oracle = {n for n, g in zip(ALL, grads) if g is not None}
    assert set(r.reaches["loss"]) == oracle == set(ALL[:4])
    assert sorted(d["name"] for d in r.detached if d["kind"] == "unreached") == sorted(AUX)
    loss.backward()
    opt.step()
    assert model.aux_head.weight.grad is None and model.head.weight.grad is not None


def test_no_twins_without_fsdp():
    assert unsharded_twins(_Net()) == {}
