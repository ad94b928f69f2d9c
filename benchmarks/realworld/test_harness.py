"""Tests of the harness itself: the oracle and the comparison (``pytest benchmarks/realworld``).

Not in the default test run (``testpaths`` is tests/ and graphprobe/): the harness is a benchmark.
The oracle test runs a script in a subprocess (about 3 s).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

SCRIPT = textwrap.dedent("""\
    import torch, torch.nn as nn

    class Trainer:
        def __init__(self):
            self.enc, self.head = nn.Linear(3, 3), nn.Linear(3, 1)
            self.opt = torch.optim.SGD(list(self.enc.parameters()) + list(self.head.parameters()), 0.1)

        def fit(self, x):
            h = self.enc(x)
            aux = h.pow(2).mean()
            lp = self.head(h.detach()).sum()
            main = (lp * 2).mean()
            loss = aux + 0.5 * main
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    t = Trainer()
    for _ in range(3):
        t.fit(torch.randn(4, 3))
    """)


def _oracle(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = common.base_env(common.REPO, {"GP_ORACLE_OUT": str(tmp_path / "oracle"), "GP_ORACLE_USER": str(tmp_path)})
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, check=True, timeout=120)
    (orc,) = common.load_oracle(str(tmp_path / "oracle"))
    return orc


def test_oracle_reach_terms_names_and_step(tmp_path):
    orc = _oracle(tmp_path)
    names = {p["id"]: p["names"] for p in orc["params"]}
    assert orc["end"] == "every optimizer stepped"
    (call,) = orc["calls"]  # one step: the loop's later backwards are not recorded
    assert call["site"] == "train.py:15"
    (reach,) = call["roots"]
    assert sorted(n for i in reach for n in names[i]) == [
        "self.enc.bias", "self.enc.weight", "self.head.bias", "self.head.weight",
        "t.enc.bias", "t.enc.weight", "t.head.bias", "t.head.weight"]
    terms = {t["name"]: sorted(names[i][0] for i in t["reach"]) for t in call["terms"]}
    # aux and main are additive terms (main through 0.5 *); lp is a factor inside main, not a term.
    assert terms == {"aux": ["self.enc.bias", "self.enc.weight"], "main": ["self.head.bias", "self.head.weight"]}
    assert all(p["optimizers"] == ["self.opt", "t.opt"] for p in orc["params"])


def _report(losses, reaches, params):
    return {"losses": losses, "reaches": reaches,
            "params": [{"name": n, "shape": s} for n, s in params]}


ORC = {"params": [{"id": 0, "shape": [3, 3], "names": ["net1.weight"]},
                  {"id": 1, "shape": [3], "names": ["net1.bias"]},
                  {"id": 2, "shape": [3, 3], "names": ["nets[1].module.weight"]}],
       "calls": [{"site": "a.py:10", "kind": "backward", "roots": [[0, 1]], "terms": []},
                 {"site": "a.py:11", "kind": "backward", "roots": [[2]], "terms": []}]}


def test_compare_passes_on_the_same_facts():
    rep = _report([{"name": "l1", "location": "/x/a.py:10"}, {"name": "l2", "location": "a.py:11"}],
                  {"l1": ["net1.weight", "net1.bias"], "l2": ["nets.1.weight"]},
                  [("net1.weight", [3, 3]), ("net1.bias", [3]), ("nets.1.weight", [3, 3])])
    assert common.compare(rep, ORC).problems == []


def test_compare_names_steps_and_reach():
    rep = _report([{"name": "l1", "location": "a.py:10"}, {"name": "x", "location": "a.py:12"}],
                  {"l1": ["Parameter", "net1.bias"], "x": []},
                  [("Parameter", [3, 3]), ("net1.bias", [3]), ("nets.1.weight", [3, 3])])
    problems = common.compare(rep, ORC).problems
    areas = [a for a, _ in problems]
    assert ("names", "1 names a user would not recognise: Parameter") in problems
    assert any(a == "step" and "a.py:11 not captured" in t for a, t in problems)
    assert any(a == "step" and "a.py:12 is not a backward" in t for a, t in problems)
    # `Parameter` can't be matched to net1.weight (two parameters have that shape): a reach miss.
    assert "reach" in areas


def test_norm_and_bad_names():
    assert common.norm("nets[1].module.weight") == common.norm("nets.1.weight") == "nets.1.weight"
    assert common.norm("d['enc'].weight") == "d.enc.weight"
    assert common.bad_name("Parameter") and common.bad_name("opt.param_groups[0][1]")
    assert not common.bad_name("self.model.0.weight")
