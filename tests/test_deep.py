"""Deep graphs: a 3,000-step GRUCell unroll walks, analyses and writes DOT without recursion."""
from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from graphprobe import probe


@pytest.mark.slow  # a 3,000-step unroll (3 s)
def test_gru_3000_steps_no_stack_overflow():
    torch.manual_seed(0)
    cell = nn.GRUCell(4, 4)
    head = nn.Linear(4, 1)
    x = torch.randn(1, 4)
    h = torch.zeros(1, 4)
    for _ in range(3000):
        h = cell(x, h)
    loss = head(h).pow(2).mean()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # anything recursive on the graph's depth dies here
    try:
        r = probe(loss)
        dot = r.to_dot()
        js = r.to_json(indent=None)
    finally:
        sys.setrecursionlimit(old)
    assert len(r.model) > 3000 * 10
    assert sorted(r.reaches["loss"]) == sorted(
        ["cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh", "head.weight", "head.bias"])
    assert r.ok and len(r.components) == 1
    assert dot.startswith("digraph") and '"schema": 1' in js


@pytest.mark.slow
def test_freeing_a_walked_deep_graph_does_not_crash(tmp_path):
    # torch 2.13 frees nodes Python has seen recursively: without graphprobe raising the stack
    # limit, freeing this probed graph segfaults (about 160k nodes; the limit bites near 80k).
    import subprocess
    import textwrap

    script = tmp_path / "deep.py"
    script.write_text(textwrap.dedent('''
        import gc, torch
        from torch import nn
        import graphprobe

        torch.manual_seed(0)
        cell = nn.GRUCell(2, 2)
        x, h = torch.randn(1, 2), torch.zeros(1, 2)
        for _ in range(10000):
            h = cell(x, h)
        loss = h.sum()

        def check(l):
            return graphprobe.probe(l)

        r = check(loss)
        del loss, h
        gc.collect()
        print("freed", len(r.model))
    '''))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("freed ")
