"""Reachability checked against autograd itself, on random chained programs with random cuts.

The oracle is ``torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)``: a
parameter is reached exactly when its gradient is not None. Programs chain small modules; each
link is direct, arithmetic, or a cut (detach, .data, numpy round trip with numpy functions,
.item(), .tolist(), no_grad), optionally re-entered with requires_grad_(True). Every cut on a
path that a probed loss reads must be reported, with its kind, at its exit line; no other cut
may be reported.
"""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from graphprobe import analysis as A
from graphprobe import probe, trace

PROFILE = os.environ.get("GRAPHPROBE_FUZZ", "ci")
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])

LINKS = ["direct", "arith", "detach", "data", "numpy", "numpy_fn", "item", "tolist", "no_grad"]
CUT_KIND = {"detach": "detach", "data": "data", "numpy": "numpy", "numpy_fn": "numpy",
            "item": "item", "tolist": "tolist", "no_grad": "no_grad"}


def link_direct(h):
    return h


def link_arith(h):
    return h * 0.5 + 1


def link_detach(h):
    return h.detach()  # EXIT


def link_data(h):
    return h.data  # EXIT


def link_numpy(h):
    return torch.from_numpy(h.detach().numpy() * 0.5)  # EXIT


def link_numpy_fn(h):
    a = h.detach().cpu().numpy()  # EXIT
    a = np.clip(np.concatenate([a, a], axis=0)[: a.shape[0]], -5, 5)
    return torch.as_tensor(np.asarray(a))


def link_item(h):
    scale = h.mean().item()  # EXIT
    return torch.ones(2, 4) * scale


def link_tolist(h):
    return torch.tensor(h.tolist())  # EXIT


def link_no_grad(h):
    with torch.no_grad():
        return h * 1.0  # EXIT


FUNCS = {name: globals()["link_" + name] for name in LINKS}


def exit_line(name: str) -> int | None:
    src, start = inspect.getsourcelines(FUNCS[name])
    for i, line in enumerate(src):
        if "# EXIT" in line:
            return start + i
    return None


programs = st.integers(2, 5).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, 10 ** 6), st.sampled_from(LINKS), st.booleans()),
             min_size=n - 1, max_size=n - 1),
    st.lists(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True), min_size=1, max_size=3),
))


@settings(settings.get_profile("ci"), max_examples=20)
@given(programs)
def test_reaches_equal_autograd_oracle(program):
    check_oracle_program(program)


@pytest.mark.slow
@settings(settings.get_profile(PROFILE))
@given(programs)
def test_reaches_equal_autograd_oracle_full(program):
    check_oracle_program(program)


def check_oracle_program(program) -> None:
    n, links, loss_terms = program
    torch.manual_seed(0)
    mods = [nn.Linear(4, 4) for _ in range(n)]
    params = {f"m{i}": m for i, m in enumerate(mods)}
    x = torch.ones(2, 4) * 0.3
    made: list[tuple[int, str]] = []  # (target module, link) for every cut link
    with trace():
        outs = [mods[0](x)]
        for i in range(1, n):
            seed, link, regrad = links[i - 1]
            src = seed % i
            h = FUNCS[link](outs[src])
            if link in CUT_KIND and regrad:
                h = h.detach().requires_grad_(True) if h.grad_fn is not None else h.requires_grad_(True)
            outs.append(mods[i](h))
            if link in CUT_KIND:
                made.append((i, link))
        losses = [sum(outs[j].pow(2).mean() for j in terms) for terms in loss_terms]
        names = [f"L{k}" for k in range(len(losses))]
        r = probe(*losses, params=params, names=names)

    # The walk's own bitsets agree with the textbook Kahn-order propagation over the graph.
    assert A.reaches(r.model) == r.reaches

    all_params = [(f"m{i}.{pn}", p) for i, m in enumerate(mods) for pn, p in m.named_parameters()]
    for name, loss in zip(names, losses):
        grads = torch.autograd.grad(loss, [p for _, p in all_params], allow_unused=True, retain_graph=True)
        oracle = {pn for (pn, _), g in zip(all_params, grads) if g is not None}
        assert set(r.reaches[name]) == oracle, (name, program)

    # Cuts: every cut whose downstream module feeds a probed loss is reported at its exit line.
    live_modules = set()
    for terms in loss_terms:
        live_modules.update(terms)
    # A module is live when a loss reads its output, directly or through later modules and cuts.
    changed = True
    while changed:
        changed = False
        for i in range(1, n):
            seed, link, _ = links[i - 1]
            src = seed % i
            if i in live_modules and src not in live_modules:
                live_modules.add(src)
                changed = True
    expected = sorted((CUT_KIND[link], exit_line(link)) for i, link in made if i in live_modules)
    # A no_grad cut's location is its `with` line; the op inside it is exit_location.
    reported = sorted((c["kind"], int((c.get("exit_location") or c["location"]).rsplit(":", 1)[1])) for c in r.cuts)
    assert sorted(set(reported)) == sorted(set(expected)), (program, r.cuts)
    for c in r.cuts:
        assert c["location"].split(":")[0].endswith("test_oracle.py")
