"""Names, optimizers and modules found wherever a script keeps them; terms that are not losses.

Each case is a small program of our own: run as a script under the runner (as ``graphprobe
render`` runs it) where the pattern is about a training script, or probed in-process where it
is about ``probe()``. Reachability is checked against ``torch.autograd.grad`` where the test
can call it.
"""
from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
from torch import nn

import graphprobe
from graphprobe.record.names import collect_known
from graphprobe.record.terms import loss_terms
from graphprobe.run.options import RunOptions
from graphprobe.run.script import run_script


def _run(tmp_path: Path, src: str, *args: str, steps: int = 1):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(src))
    return run_script(RunOptions(str(script), list(args), steps=steps)).report


def _names(rep) -> dict[str, list[str]]:
    """Parameter name -> the optimizers holding it, with the rules every name must follow."""
    out = {p["name"]: p["optimizers"] for p in rep.params}
    for name in out:
        assert name != "Parameter" and "param_groups" not in name, name
    return out


def _oracle(loss: torch.Tensor, named: dict[str, torch.Tensor]) -> set[str]:
    """The names of the parameters a real gradient reaches."""
    ps = list(named.values())
    grads = torch.autograd.grad(loss, ps, allow_unused=True, retain_graph=True)
    return {n for n, g in zip(named, grads) if g is not None}


# -- a Trainer class (the repro) ---------------------------------------------------------
TRAINER = """
    import itertools
    import torch
    from torch import nn

    class Trainer:
        def __init__(self):
            self.enc = nn.Linear(4, 4)
            self.head = nn.Linear(4, 1)
            self.opt = torch.optim.SGD(itertools.chain(self.enc.parameters(), self.head.parameters()), lr=0.1)

        def fit(self, x):
            h = torch.from_numpy(self.enc(x).detach().numpy())
            loss = self.head(h).pow(2).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def main():
        trainer = Trainer()
        for _ in range(3):
            trainer.fit(torch.randn(8, 4))

    main()
"""


def test_trainer_class_names_its_parameters_through_self_and_finds_its_optimizer(tmp_path):
    rep = _run(tmp_path, TRAINER)
    names = _names(rep)
    assert names == {f"self.{m}.{w}": ["self.opt"] for m in ("enc", "head") for w in ("weight", "bias")}
    assert sorted(rep.reaches["loss"]) == ["self.head.bias", "self.head.weight"]
    # The numpy round trip is found, and the encoder it starves is held by the optimizer.
    assert [c["kind"] for c in rep.cuts] == ["numpy"]
    starved = {d["name"]: d["optimizers"] for d in rep.detached if d["kind"] == "unreached"}
    assert starved == {"self.enc.weight": ["self.opt"], "self.enc.bias": ["self.opt"]}
    assert {p["module"] for p in rep.params} == {"self.enc", "self.head"}


def test_a_name_the_stack_binds_to_several_objects_gives_way_to_one_that_says_which(tmp_path):
    # Layers in a plain list, each with its own optimizer (forward-forward). `self` is a layer in
    # the method that calls backward and the net in its caller, and `layer` is a loop variable
    # (one layer, then the next): `self.weight` or `layer.weight` would not say which layer.
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        class Layer(nn.Linear):
            def __init__(self, i, o):
                super().__init__(i, o)
                self.opt = torch.optim.Adam(self.parameters(), lr=0.01)

            def train_layer(self, x):
                for _ in range(2):
                    loss = self(x).pow(2).mean()
                    self.opt.zero_grad()
                    loss.backward()
                    self.opt.step()
                return self(x).detach()

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [Layer(4, 4), Layer(4, 4)]

            def train_all(self, x):
                for layer in self.layers:
                    x = layer.train_layer(x)

        net = Net()
        net.train_all(torch.randn(8, 4))
    """, steps=3)
    names = _names(rep)
    assert names == {f"net.layers[{i}].{w}": [f"net.layers[{i}].opt"] for i in (0, 1) for w in ("weight", "bias")}


# -- a Hugging Face-style trainer -----------------------------------------------------------------
def test_hf_style_trainer_self_model_self_optimizer_loss_in_a_method(tmp_path):
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        class MiniTrainer:
            def __init__(self, model):
                self.model = model
                self.optimizer = None

            def create_optimizer(self):
                self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)

            def compute_loss(self, inputs):
                return self.model(inputs["x"]).pow(2).mean()

            def training_step(self, inputs):
                loss = self.compute_loss(inputs)
                loss.backward()
                return loss.detach()

            def train(self):
                self.create_optimizer()
                for _ in range(3):
                    self.training_step({"x": torch.randn(8, 4)})
                    self.optimizer.step()
                    self.optimizer.zero_grad()

        MiniTrainer(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))).train()
    """)
    names = _names(rep)
    expect = {f"self.model.{i}.{w}" for i in (0, 2) for w in ("weight", "bias")}
    assert set(names) == expect and all(v == ["self.optimizer"] for v in names.values())
    assert sorted(rep.reaches["loss"]) == sorted(expect)


# -- lists and dicts of nets, closures ------------------------------------------------------------
def test_nets_in_a_list_and_optimizers_in_a_dict():
    torch.manual_seed(0)
    nets = [nn.Linear(3, 1) for _ in range(3)]
    opts = {"g": torch.optim.SGD(nets[0].parameters(), lr=0.1), "d": torch.optim.SGD(nets[1].parameters(), lr=0.1)}

    def step(x):
        loss = nets[0](x).sum() + nets[2](x).sum()
        return graphprobe.probe(loss), loss

    rep, loss = step(torch.randn(2, 3))
    names = _names(rep)
    assert names == {"nets[0].weight": ['opts["g"]'], "nets[0].bias": ['opts["g"]'],
                     "nets[1].weight": ['opts["d"]'], "nets[1].bias": ['opts["d"]'],
                     "nets[2].weight": [], "nets[2].bias": []}
    named = {f"nets[{i}].{w}": getattr(n, w) for i, n in enumerate(nets) for w in ("weight", "bias")}
    assert set(rep.reaches["loss"]) == _oracle(loss, named)
    del opts


def test_a_model_held_only_by_a_closure_is_named_by_the_closure_variable():
    def make(model, opt):
        def loss_fn(x):
            return model(x).pow(2).mean()

        def update():
            opt.step()
        return loss_fn, update

    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    loss_fn, update = make(net, torch.optim.SGD(net.parameters(), lr=0.1))
    del net  # only the closures hold the model and its optimizer now

    def step():
        loss = loss_fn(torch.randn(4, 3))
        return graphprobe.probe(loss)

    names = _names(step())
    assert names == {"model.weight": ["opt"], "model.bias": ["opt"]}
    del update


# -- registries: the forward hooks and the garbage collector --------------------------------------
class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.out = nn.Linear(3, 1)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))


def test_a_model_reachable_only_through_the_forward_hooks_is_named_by_its_class():
    # Held by a Python module object, which the search does not look into: only the recorder's
    # forward hooks saw it run. Its optimizer, built inside the trace, is in the registry too.
    holder = types.ModuleType("holder")
    with graphprobe.trace():
        holder.model = _Backbone()
        holder.opt = torch.optim.SGD(holder.model.parameters(), lr=0.1)

        def forward(x):
            return holder.model(x).pow(2).mean()

        rep = graphprobe.probe(forward(torch.randn(4, 3)))
    names = _names(rep)
    assert names == {f"_Backbone.{m}.{w}": ["SGD"] for m in ("fc", "out") for w in ("weight", "bias")}
    assert {rep.model.module[v] for v in rep.model.nodes_of_kind("op")} >= {"_Backbone.fc", "_Backbone.out"}


def test_probe_in_a_nested_function_finds_the_optimizer_through_the_garbage_collector():
    torch.manual_seed(0)
    net = _Backbone()
    step_fn = torch.optim.Adam(net.parameters(), lr=0.1).step  # only a bound method holds it

    def outer():
        def inner():
            loss = net(torch.randn(4, 3)).sum()
            return graphprobe.probe(loss)
        return inner()

    names = _names(outer())
    assert all(opts == ["Adam"] for opts in names.values()) and len(names) == 4
    del step_fn


def test_the_garbage_collector_never_lends_another_program_s_optimizer():
    def make_stray():
        other = nn.Linear(2, 2)
        return torch.optim.SGD(other.parameters(), lr=0.1).step  # another model's optimizer

    keep = make_stray()

    def step():
        net = nn.Linear(3, 1)
        return graphprobe.probe(net(torch.randn(2, 3)).sum())

    assert _names(step()) == {"net.weight": [], "net.bias": []}
    del keep


def test_an_lr_scheduler_leads_to_its_optimizer():
    net = nn.Linear(3, 1)
    sched = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(net.parameters(), lr=0.1), step_size=1)
    names = _names(graphprobe.probe(net(torch.randn(2, 3)).sum()))
    assert names == {"net.weight": ["sched.optimizer"], "net.bias": ["sched.optimizer"]}
    del sched


def test_collect_known_is_deterministic_and_prefers_the_most_local_path():
    class Holder:
        def __init__(self, m):
            self.model = m

    model = nn.Sequential(nn.Linear(2, 2))
    holder = Holder(model)  # noqa: F841
    enc = model[0]  # noqa: F841  (inside model: the outermost module names it)
    a = [p.name for p in collect_known(sys._getframe()).params.values()]
    b = [p.name for p in collect_known(sys._getframe()).params.values()]
    assert a == b == ["model.0.weight", "model.0.bias"]


# -- lazy modules ---------------------------------------------------------------------------------
def test_an_uninitialised_lazy_linear_in_scope_does_not_crash_the_runner(tmp_path):
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        net = nn.Linear(3, 1)
        lazy = nn.LazyLinear(4)
        opt = torch.optim.SGD(list(net.parameters()) + list(lazy.parameters()), lr=0.1)
        for _ in range(2):
            loss = net(torch.randn(2, 3)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    """)
    assert _names(rep) == {"net.weight": ["opt"], "net.bias": ["opt"]}
    assert any("lazy.weight" in n and "not initialised" in n for n in rep.notes)


def test_an_uninitialised_lazy_linear_in_scope_does_not_crash_probe():
    net = nn.Linear(3, 1)
    lazy = nn.LazyLinear(4)  # noqa: F841
    rep = graphprobe.probe(net(torch.randn(2, 3)).sum(), confirm=True)
    assert set(_names(rep)) == {"net.weight", "net.bias"}


# -- terms that are not losses --------------------------------------------------------------------
def test_a_loop_variable_and_one_step_s_log_prob_are_not_losses(tmp_path):
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        policy = nn.Linear(4, 2)
        opt = torch.optim.Adam(policy.parameters(), lr=0.01)
        for episode in range(2):
            log_probs = []
            for t in range(5):
                dist = torch.distributions.Categorical(logits=policy(torch.randn(4)))
                log_prob = dist.log_prob(dist.sample())
                log_probs.append(log_prob)
            p = torch.sigmoid(policy(torch.randn(4))).mean()  # a metric with grad, not in the loss
            returns = torch.randn(5)
            loss = -(torch.stack(log_probs) * returns).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    """)
    assert [l["name"] for l in rep.losses] == ["loss"]


def test_a_finished_accumulation_loop_s_last_term_is_not_a_loss(tmp_path):
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        net = nn.Linear(4, 1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for step in range(2):
            total = 0
            for chunk in torch.randn(3, 2, 4):
                part = net(chunk).pow(2).mean()
                total = total + part
            opt.zero_grad()
            total.backward()
            opt.step()
    """)
    assert [l["name"] for l in rep.losses] == ["total"]


def test_named_terms_of_a_weighted_sum_are_still_losses(tmp_path):
    # The counter-example: terms bound in the loop that also runs the backward are this step's.
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        a, b = nn.Linear(4, 1), nn.Linear(4, 1)
        opt = torch.optim.SGD([*a.parameters(), *b.parameters()], lr=0.1)
        for step in range(2):
            x = torch.randn(8, 4)
            recon = a(x).pow(2).mean()
            kl = b(x).abs().mean()
            loss = recon + 0.5 * kl - 0.1 * a(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    """)
    names = {l["name"]: l["composite"] for l in rep.losses}
    assert names == {"loss": True, "recon": False, "kl": False}
    assert sorted(rep.reaches["kl"]) == ["b.bias", "b.weight"]


def test_loss_terms_rules_in_process():
    net = nn.Linear(3, 1)
    x = torch.randn(2, 3)
    l1 = net(x).sum()
    l2 = net(x).mean()
    factor = net(x).mean()
    unrelated = net(x).max()  # noqa: F841
    total = l1 + 2 * l2 + (factor * factor)
    got = [k for k, _ in loss_terms(sys._getframe(), [total])]
    assert got == ["l1", "l2"]


# -- module attribution ---------------------------------------------------------------------------
class _Seq(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, 5)
        self.lstm2 = nn.LSTMCell(5, 5)
        self.linear = nn.Linear(5, 1)

    def forward(self, x):
        h, c, h2, c2 = (torch.zeros(x.size(0), 5, dtype=x.dtype) for _ in range(4))
        outs = []
        for xt in x.split(1, dim=1):
            h, c = self.lstm1(xt, (h, c))
            h2, c2 = self.lstm2(h, (h2, c2))
            outs.append(self.linear(h2))
        return torch.cat(outs, 1)


def _module_counts(rep) -> dict[str | None, int]:
    g = rep.model
    out: dict[str | None, int] = {}
    for v in g.nodes_of_kind("op"):
        out[g.module[v]] = out.get(g.module[v], 0) + 1
    return out


def test_ops_inside_an_lstm_cell_belong_to_the_cell():
    seq = _Seq()
    with graphprobe.trace():
        loss = (seq(torch.randn(3, 4)) - 1).pow(2).mean()
        rep = graphprobe.probe(loss)
    counts = _module_counts(rep)
    # Only the loss's own ops (sub, pow, mean) are outside modules; each cell owns its gates.
    assert counts.get(None, 0) == 3
    assert counts["seq.lstm1"] >= 4 * 10 and counts["seq.lstm2"] >= 4 * 10


def test_ops_inside_an_lbfgs_closure_belong_to_their_modules(tmp_path):
    # time_sequence_prediction's shape: LBFGS runs the forward inside optimizer.step(closure).
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        class Seq(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm1 = nn.LSTMCell(1, 5)
                self.linear = nn.Linear(5, 1)

            def forward(self, x):
                h = c = torch.zeros(x.size(0), 5, dtype=torch.double)
                outs = []
                for xt in x.split(1, dim=1):
                    h, c = self.lstm1(xt, (h, c))
                    outs.append(self.linear(h))
                return torch.cat(outs, 1)

        seq = Seq().double()
        crit = nn.MSELoss()
        opt = torch.optim.LBFGS(seq.parameters(), lr=0.8)
        x, y = torch.randn(3, 4, dtype=torch.double), torch.randn(3, 4, dtype=torch.double)
        for i in range(2):
            def closure():
                opt.zero_grad()
                loss = crit(seq(x), y)
                loss.backward()
                return loss
            opt.step(closure)
    """)
    counts = _module_counts(rep)
    outside = counts.get(None, 0)
    assert outside == 0, counts
    assert counts["seq.lstm1"] > counts["seq.linear"] > 0
    assert _names(rep)["seq.lstm1.weight_ih"] == ["opt"]


def test_a_module_built_inside_forward_is_named_by_its_parent():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            if not hasattr(self, "proj"):
                self.proj = nn.Linear(4, 4)  # built on the first forward, kept as a submodule
            scratch = nn.Linear(4, 4)  # built and called, never kept
            return self.proj(self.fc(x)) + scratch(x)

    net = Net()
    with graphprobe.trace():
        rep = graphprobe.probe(net(torch.randn(2, 4)).sum())
    mods = set(_module_counts(rep))
    assert {"net.fc", "net.proj", "net.<Linear>"} <= mods
    assert {"net.proj.weight", "net.<Linear>.weight"} <= set(_names(rep))


def test_names_are_taken_at_the_backward_not_after_the_script_rebinds_them(tmp_path):
    # word_language_model's shape: one backward, then the script reloads another model into the
    # same variable before it ends (the step ends with the script).
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        model = nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(torch.randn(2, 3)).sum()
        loss.backward()
        opt.step()
        model = nn.Linear(3, 1)  # "the best model", reloaded for testing
    """)
    assert _names(rep) == {"model.weight": ["opt"], "model.bias": ["opt"]}  # not the reloaded one
    assert sorted(rep.reaches["loss"]) == ["model.bias", "model.weight"]


def test_each_backward_names_what_it_sees_and_one_optimizer_keeps_one_name(tmp_path):
    # Two layers each with its own `self.opt` (forward-forward), both backwards in one step:
    # the second backward's `self.opt` is another optimizer than the first's.
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        class Layer(nn.Linear):
            def __init__(self):
                super().__init__(4, 4)
                self.opt = torch.optim.SGD(self.parameters(), lr=0.1)

            def fit(self, x):
                loss = self(x).pow(2).mean()
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                return self(x).detach()

        layers = [Layer(), Layer()]

        def train(x):
            for layer in layers:
                x = layer.fit(x)

        train(torch.randn(2, 4))
        train(torch.randn(2, 4))
    """, steps=1)
    names = _names(rep)
    # However many of the backwards the step holds, no two parameters share a name and each
    # optimizer is listed under one name.
    assert len(names) == 4
    by_opt: dict[str, set[str]] = {}
    for n, opts in names.items():
        assert len(opts) == 1, names
        by_opt.setdefault(opts[0], set()).add(n.rsplit(".", 1)[0])
    assert all(len(mods) == 1 for mods in by_opt.values()), by_opt


def test_merged_keeps_one_name_per_optimizer_object_and_per_parameter():
    class Layer(nn.Linear):
        def __init__(self):
            super().__init__(2, 2)
            self.opt = torch.optim.SGD(self.parameters(), lr=0.1)

        def known_here(self):
            return collect_known(sys._getframe())

    a, b = Layer(), Layer()
    first, second = a.known_here(), b.known_here()  # both call their layer `self`, its optimizer `self.opt`
    merged = first.merged(second)
    names = {info.name: info.optimizers for info in merged.params.values()}
    assert names == {"self.weight": ["self.opt"], "self.bias": ["self.opt"],
                     "b.weight": ["b.opt"], "b.bias": ["b.opt"]}
    assert merged.optimizer_ids == {id(a.opt): "self.opt", id(b.opt): "b.opt"}


def test_a_model_bound_by_a_loop_is_named_through_the_list_it_comes_from():
    # An ensemble: `net` is each model in turn; nets[1] says which one.
    nets = [nn.Linear(3, 1) for _ in range(2)]
    opts = [torch.optim.SGD(n.parameters(), lr=0.1) for n in nets]
    reports = []
    for net, opt in zip(nets, opts):
        reports.append(graphprobe.probe(net(torch.randn(2, 3)).sum()))
    last = reports[-1]
    assert _names(last) == {f"nets[{i}].{w}": [f"opts[{i}]"] for i in (0, 1) for w in ("weight", "bias")}
    assert sorted(last.reaches["loss[0]"]) == ["nets[1].bias", "nets[1].weight"]


def test_a_parameter_no_name_reaches_is_named_through_its_module_class_never_parameter():
    # probe() without a trace; the model is held only by a Python module object (not searched)
    # and no optimizer: the garbage collector's modules name it by class.
    holder = types.ModuleType("holder")
    holder.model = _Backbone()

    def run():
        return graphprobe.probe(holder.model(torch.randn(2, 3)).sum())

    rep = run()
    assert set(_names(rep)) == {f"_Backbone.{m}.{w}" for m in ("fc", "out") for w in ("weight", "bias")}
    assert {p["module"] for p in rep.params} == {"_Backbone.fc", "_Backbone.out"}


def _accumulate(xs):
    total = 0
    for x in xs:
        total = total + x
    return total


def test_loop_spans_say_which_bindings_are_inside_a_loop():
    from graphprobe.record.scopes import loop_spans

    first = _accumulate.__code__.co_firstlineno
    spans = loop_spans(_accumulate.__code__)
    loop = (first + 2, first + 3)
    assert spans is not None
    assert {k: sorted(v, key=str) for k, v in spans.items()} == {"total": sorted([None, loop], key=str), "x": [loop]}


def test_notes_name_an_optimizer_that_never_stepped_as_the_report_does(tmp_path):
    rep = _run(tmp_path, """
        import torch
        from torch import nn

        class Trainer:
            def __init__(self):
                self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 1)
                self.opt_a = torch.optim.SGD(self.a.parameters(), lr=0.1)
                self.opt_b = torch.optim.SGD(self.b.parameters(), lr=0.1)  # built, never stepped

            def fit(self, x):
                loss = self.a(x).sum()
                self.opt_a.zero_grad()
                loss.backward()
                self.opt_a.step()

        trainer = Trainer()
        for _ in range(3):
            trainer.fit(torch.randn(2, 3))
    """)
    assert _names(rep)["self.b.weight"] == ["self.opt_b"]
    assert any("self.opt_b did not step" in n for n in rep.notes), rep.notes
