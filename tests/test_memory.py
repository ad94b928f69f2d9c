"""Memory: no report or recorder keeps a user's tensor alive; long runs stay flat."""
from __future__ import annotations

import gc
import json
import textwrap
import tracemalloc
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from graphprobe import probe, trace
from graphprobe.cli import main


def test_report_and_finished_trace_hold_no_tensor():
    torch.manual_seed(0)
    net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
    refs: list[weakref.ref] = []

    def step():
        with trace() as t:
            x = torch.ones(2, 3)
            tmp = net1(x)
            tmp2 = torch.from_numpy(tmp.detach().numpy() * 0.5)
            loss = net2(tmp2).sum()
            refs.extend(weakref.ref(v) for v in (x, tmp, tmp2, loss))
            r = probe(loss)
        t.clear()  # a finished trace keeps its cut records until cleared or dropped
        return r

    r = step()
    gc.collect()
    assert refs and all(ref() is None for ref in refs)
    assert r.cuts and r.cuts[0]["kind"] == "numpy"


@pytest.mark.slow
def test_trace_around_a_long_loop_stays_flat():
    torch.manual_seed(0)
    net1, net2 = nn.Linear(8, 8), nn.Linear(8, 8)
    opt = torch.optim.SGD(list(net1.parameters()) + list(net2.parameters()), lr=0.01)
    x = torch.randn(4, 8)
    sizes = {}
    with trace() as t:
        tracemalloc.start()
        try:
            for step in range(1000):
                opt.zero_grad()
                h = net1(x)
                h2 = torch.from_numpy(np.clip(h.detach().numpy(), -1, 1))
                loss = net2(h2).pow(2).mean() + h.pow(2).mean()
                loss.backward()
                opt.step()
                _ = loss.item()
                if step in (200, 999):
                    gc.collect()
                    sizes[step] = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        held = len(t.cut_records())
    assert held <= 16  # bounded per site, not one per step
    assert sizes[999] - sizes[200] < 200_000, sizes


@pytest.mark.slow
def test_keep_running_1000_steps_memory_flat(tmp_path, monkeypatch):
    out = tmp_path / "mem.json"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f'''
        import gc, json, tracemalloc, weakref
        import numpy as np
        import torch
        from torch import nn

        torch.manual_seed(0)
        net1, net2 = nn.Linear(8, 8), nn.Linear(8, 8)
        opt = torch.optim.SGD(list(net1.parameters()) + list(net2.parameters()), lr=0.01)
        x = torch.randn(4, 8)
        sizes, alive = {{}}, []
        for step in range(1000):
            if step == 50:
                tracemalloc.start()
            opt.zero_grad()
            h = net1(x)
            h2 = torch.from_numpy(h.detach().numpy() * 0.5)
            loss = net2(h2).pow(2).mean() + h.pow(2).mean()
            alive.append(weakref.ref(loss))
            loss.backward()
            opt.step()
            if step in (100, 999):
                gc.collect()
                sizes[step] = tracemalloc.get_traced_memory()[0]
        gc.collect()
        json.dump({{"growth": sizes[999] - sizes[100],
                    "alive": sum(r() is not None for r in alive)}}, open({str(out)!r}, "w"))
    '''))
    monkeypatch.chdir(tmp_path)
    assert main(["render", str(script), "--keep-running", "-o", "g.json", "-q"]) == 0
    m = json.loads(out.read_text())
    assert m["alive"] <= 1  # only the last step's loss, held by the script's own variable
    assert m["growth"] < 100_000, m
    assert json.loads((tmp_path / "g.json").read_text())["cuts"]
