"""Errors the script's backward raises are explained, with the report still written."""
from __future__ import annotations

import json
import textwrap

from graphprobe.cli import main


def test_loss_that_does_not_require_grad_says_where_the_chain_was_cut(tmp_path, monkeypatch, capsys):
    script = tmp_path / "nograd.py"
    script.write_text(textwrap.dedent('''
        import torch
        from torch import nn
        torch.manual_seed(0)
        net = nn.Linear(3, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x = torch.ones(2, 3)
        for step in range(3):
            opt.zero_grad()
            out = net(x)
            pred = torch.tensor(out.detach().numpy())
            loss = (pred - 1).pow(2).mean()
            loss.backward()
            opt.step()
    '''))
    monkeypatch.chdir(tmp_path)
    assert main(["render", str(script), "-o", "out.json", "-q"]) == 6
    d = json.loads((tmp_path / "out.json").read_text())
    err = d["errors"][0]
    assert err["kind"] == "no_grad_root" and err["location"].endswith("nograd.py:13")
    assert "cut at nograd.py:11 (numpy" in err["message"]
    assert {x["name"] for x in d["detached"]} == {"net.weight", "net.bias"}
    assert "Traceback" not in capsys.readouterr().err
