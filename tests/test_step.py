"""The step is one round of the script's optimizers: each pattern of a training step, captured whole.

Each test writes a small training program of our own, runs it once plainly with an oracle
(``torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)`` at each backward of
its first step, recorded by parameter shape: every parameter in a program has its own shape),
then under ``graphprobe render``, and compares the reach sets.
"""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphprobe.cli import main

ROOT = Path(__file__).resolve().parent.parent

HEAD = '''\
import json, os, sys
import numpy as np
import torch
import torch.nn as nn
torch.manual_seed(0)
_OR = os.environ.get("GP_ORACLE")
_rec = []
def O(loss, params, first=True):
    """The oracle: which parameters (by shape) this loss reaches, in the plain run only."""
    if _OR and first:
        ps = [p for p in params if p.requires_grad]
        gs = torch.autograd.grad(loss, ps, allow_unused=True, retain_graph=True)
        _rec.append(sorted(list(p.shape) for p, g in zip(ps, gs) if g is not None))
        with open(_OR, "w") as fh:
            json.dump(_rec, fh)
'''


def _write(tmp_path: Path, body: str, name: str = "prog.py") -> Path:
    p = tmp_path / name
    p.write_text(HEAD + textwrap.dedent(body))
    return p


def _oracle(script: Path, monkeypatch) -> list:
    out = script.parent / "oracle.json"
    monkeypatch.chdir(script.parent)
    monkeypatch.setenv("GP_ORACLE", str(out))
    runpy.run_path(str(script), run_name="__main__")
    monkeypatch.delenv("GP_ORACLE")
    return sorted(json.loads(out.read_text()))


def _render(script: Path, monkeypatch, capsys, *extra: str) -> tuple[int, dict, str]:
    monkeypatch.chdir(script.parent)
    rc = main(["render", str(script), "-o", "out.json", *extra])
    err = capsys.readouterr().err
    rep = json.loads((script.parent / "out.json").read_text()) if (script.parent / "out.json").exists() else {}
    return rc, rep, err


def _reach_by_shape(rep: dict) -> list:
    """Per loss, the shapes of the parameters it reaches (from each parameter's ``reached_by``)."""
    shapes = [p["shape"] for p in rep["params"]]
    assert len({tuple(s) for s in shapes}) == len(shapes), "a program's parameters need distinct shapes"
    by_loss: dict[str, list] = {l["name"]: [] for l in rep["losses"]}
    for p in rep["params"]:
        for l in p["reached_by"]:
            by_loss[l].append(p["shape"])
    return sorted(sorted(v) for v in by_loss.values())


def _check(tmp_path, monkeypatch, capsys, body: str, n_losses: int, *extra: str) -> dict:
    script = _write(tmp_path, body)
    want = _oracle(script, monkeypatch)
    rc, rep, err = _render(script, monkeypatch, capsys, *extra)
    assert rc == 0, err
    assert len(want) == n_losses, want  # the oracle saw the step we mean
    assert _reach_by_shape(rep) == want, (rep["reaches"], want)
    assert len(rep["losses"]) == n_losses
    return rep


def test_lbfgs_closure_is_recorded_once_with_its_cut(tmp_path, monkeypatch, capsys):
    rep = _check(tmp_path, monkeypatch, capsys, """\
        enc, head = nn.Linear(3, 5), nn.Linear(5, 2)
        opt = torch.optim.LBFGS(list(enc.parameters()) + list(head.parameters()), max_iter=5)
        x = torch.randn(8, 3)
        seen = [0]
        for it in range(3):
            def closure():
                opt.zero_grad()
                h = torch.from_numpy(enc(x).detach().numpy())   # the cut, inside the closure
                loss = head(h).pow(2).mean()
                O(loss, list(enc.parameters()) + list(head.parameters()), it == 0 and seen[0] == 0)
                seen[0] += 1
                loss.backward()
                return loss
            opt.step(closure)
        """, 1)
    assert [c["kind"] for c in rep["cuts"]] == ["numpy"]
    un = {d["name"] for d in rep["detached"] if d["kind"] == "unreached"}
    assert un == {"enc.weight", "enc.bias"}


def test_wgan_gp_penalty_grad_is_not_a_loss(tmp_path, monkeypatch, capsys):
    rep = _check(tmp_path, monkeypatch, capsys, """\
        D = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1))
        G = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 4))
        opt_d = torch.optim.Adam(D.parameters(), 1e-3)
        opt_g = torch.optim.Adam(G.parameters(), 1e-3)
        allp = list(D.parameters()) + list(G.parameters())
        for it in range(3):
            real, z = torch.randn(8, 4), torch.randn(8, 2)
            fake = G(z).detach()
            a = torch.rand(8, 1)
            mix = (a * real + (1 - a) * fake).requires_grad_(True)
            _g = torch.autograd.grad(D(mix).sum(), mix, create_graph=True, retain_graph=True)[0]
            d_loss = D(fake).mean() - D(real).mean() + 10 * ((_g.norm(2, dim=1) - 1) ** 2).mean()
            O(d_loss, allp, it == 0)
            opt_d.zero_grad(); d_loss.backward(); opt_d.step()
            g_loss = -D(G(z)).mean()
            O(g_loss, allp, it == 0)
            opt_g.zero_grad(); g_loss.backward(); opt_g.step()
        """, 2)
    assert sorted(l["name"] for l in rep["losses"]) == ["d_loss", "g_loss"]


def test_pinn_derivative_helper_called_twice(tmp_path, monkeypatch, capsys):
    _check(tmp_path, monkeypatch, capsys, """\
        net = nn.Sequential(nn.Linear(1, 7), nn.Tanh(), nn.Linear(7, 1))
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        def d(u, x):
            return torch.autograd.grad(u, x, torch.ones_like(u), create_graph=True)[0]
        for it in range(3):
            x = torch.rand(16, 1, requires_grad=True)
            u = net(x)
            u_xx = d(d(u, x), x)
            loss = (u_xx + u).pow(2).mean()
            O(loss, net.parameters(), it == 0)
            opt.zero_grad(); loss.backward(); opt.step()
        """, 1)


def test_jacobian_regulariser(tmp_path, monkeypatch, capsys):
    _check(tmp_path, monkeypatch, capsys, """\
        net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
        opt = torch.optim.SGD(net.parameters(), 0.1)
        for it in range(3):
            x = torch.randn(4, 3)
            J = torch.autograd.functional.jacobian(lambda z: net(z).sum(0), x, create_graph=True)
            loss = net(x).pow(2).mean() + 0.1 * J.pow(2).mean()
            O(loss, net.parameters(), it == 0)
            opt.zero_grad(); loss.backward(); opt.step()
        """, 1)


@pytest.mark.parametrize("optimizer", [True, False])
def test_loop_over_losses(tmp_path, monkeypatch, capsys, optimizer):
    update = "opt.step()" if optimizer else "[p.data.sub_(0.1 * p.grad) for p in ps]"
    _check(tmp_path, monkeypatch, capsys, f"""\
        trunk, h1, h2 = nn.Linear(3, 5), nn.Linear(5, 2), nn.Linear(5, 4)
        ps = [*trunk.parameters(), *h1.parameters(), *h2.parameters()]
        opt = torch.optim.SGD(ps, 0.1) if {optimizer} else None
        for it in range(3):
            h = trunk(torch.randn(6, 3))
            losses = [h1(h).pow(2).mean(), h2(h).abs().mean()]
            for l in losses:
                O(l, ps, it == 0)
                l.backward(retain_graph=True)
            {update}
            for p in ps:
                p.grad = None
        """, 2)


@pytest.mark.parametrize("optimizer", [True, False])
def test_two_backwards_on_one_line(tmp_path, monkeypatch, capsys, optimizer):
    update = "opt.step()" if optimizer else "[p.data.sub_(0.1 * p.grad) for p in ps]"
    _check(tmp_path, monkeypatch, capsys, f"""\
        a, b = nn.Linear(3, 5), nn.Linear(3, 2)
        ps = [*a.parameters(), *b.parameters()]
        opt = torch.optim.SGD(ps, 0.1) if {optimizer} else None
        for it in range(3):
            x = torch.randn(6, 3)
            l1, l2 = a(x).pow(2).mean(), b(x).pow(2).mean()
            O(l1, ps, it == 0); O(l2, ps, it == 0)
            l1.backward(); l2.backward()
            {update}
            for p in ps:
                p.grad = None
        """, 2)


def test_ensemble_of_nets_and_optimizers(tmp_path, monkeypatch, capsys):
    _check(tmp_path, monkeypatch, capsys, """\
        nets = [nn.Linear(3, 5), nn.Linear(3, 7), nn.Linear(3, 9)]
        opts = [torch.optim.SGD(n.parameters(), 0.1) for n in nets]
        ps = [p for n in nets for p in n.parameters()]
        for it in range(3):
            x = torch.randn(4, 3)
            for net, opt in zip(nets, opts):
                loss = net(x).pow(2).mean()
                O(loss, ps, it == 0)
                opt.zero_grad(); loss.backward(); opt.step()
        """, 3)


def test_round_robin_accumulation(tmp_path, monkeypatch, capsys):
    _check(tmp_path, monkeypatch, capsys, """\
        nets = [nn.Linear(3, 5), nn.Linear(3, 7)]
        opts = [torch.optim.SGD(n.parameters(), 0.1) for n in nets]
        ps = [p for n in nets for p in n.parameters()]
        for i in range(12):
            k = i % 2
            loss = nets[k](torch.randn(4, 3)).pow(2).mean()
            O(loss, ps, i < 4)
            loss.backward()
            if i % 4 >= 2:  # each net accumulates two micro-batches, then its optimizer steps
                opts[k].step(); opts[k].zero_grad()
        """, 4)


def test_gan_d_and_g_steps(tmp_path, monkeypatch, capsys):
    rep = _check(tmp_path, monkeypatch, capsys, """\
        D = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Linear(6, 1))
        G = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 4))
        opt_d, opt_g = torch.optim.Adam(D.parameters()), torch.optim.Adam(G.parameters())
        bce = nn.BCEWithLogitsLoss()
        allp = list(D.parameters()) + list(G.parameters())
        for it in range(3):
            real, z = torch.randn(8, 4), torch.randn(8, 2)
            fake = G(z)
            D.zero_grad()
            err_real = bce(D(real), torch.ones(8, 1)); O(err_real, allp, it == 0); err_real.backward()
            err_fake = bce(D(fake.detach()), torch.zeros(8, 1)); O(err_fake, allp, it == 0); err_fake.backward()
            opt_d.step()
            G.zero_grad()
            err_g = bce(D(fake), torch.ones(8, 1)); O(err_g, allp, it == 0); err_g.backward()
            opt_g.step()
        """, 3)
    assert not [d for d in rep["detached"] if d["severity"] == "error"]


def test_wgan_n_critic_steps_then_g(tmp_path, monkeypatch, capsys):
    _check(tmp_path, monkeypatch, capsys, """\
        D = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1))
        G = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 4))
        opt_d, opt_g = torch.optim.RMSprop(D.parameters(), 5e-5), torch.optim.RMSprop(G.parameters(), 5e-5)
        allp = list(D.parameters()) + list(G.parameters())
        for it in range(2):
            for _ in range(5):  # n_critic
                d_loss = D(G(torch.randn(8, 2)).detach()).mean() - D(torch.randn(8, 4)).mean()
                O(d_loss, allp, it == 0)
                opt_d.zero_grad(); d_loss.backward(); opt_d.step()
                for p in D.parameters():
                    p.data.clamp_(-0.01, 0.01)
            g_loss = -D(G(torch.randn(8, 2))).mean()
            O(g_loss, allp, it == 0)
            opt_g.zero_grad(); g_loss.backward(); opt_g.step()
        """, 6)


def test_regression_style_manual_update_ends_at_zero_grad(tmp_path, monkeypatch, capsys):
    rep = _check(tmp_path, monkeypatch, capsys, """\
        fc = nn.Linear(4, 1)
        done = []
        for it in range(5):
            x = torch.randn(8, 4)
            fc.zero_grad()
            out = nn.functional.smooth_l1_loss(fc(x), x.sum(1, keepdim=True))
            O(out, fc.parameters(), it == 0)
            out.backward()
            for p in fc.parameters():
                p.data.add_(-0.1 * p.grad)
            done.append(it)
            open("done.txt", "w").write(str(len(done)))
        """, 1)
    assert (tmp_path / "done.txt").read_text() == "1"  # stopped at the second zero_grad


def test_thread_training_is_captured_with_its_cuts(tmp_path, monkeypatch, capsys):
    rep = _check(tmp_path, monkeypatch, capsys, """\
        import threading
        enc, head = nn.Linear(3, 5), nn.Linear(5, 2)
        opt = torch.optim.SGD([*enc.parameters(), *head.parameters()], 0.1)
        ps = [*enc.parameters(), *head.parameters()]
        def train():
            for it in range(4):
                h = torch.from_numpy(enc(torch.randn(4, 3)).detach().numpy())
                loss = head(h).pow(2).mean()
                O(loss, ps, it == 1)
                opt.zero_grad(); loss.backward(); opt.step()
        t = threading.Thread(target=train)
        t.start(); t.join()
        """, 1)
    assert any("thread" in n for n in rep["notes"])
    assert [c["kind"] for c in rep["cuts"]] == ["numpy"]  # recorded in the thread
    assert {d["name"] for d in rep["detached"] if d["kind"] == "unreached"} == {"enc.weight", "enc.bias"}


def test_multi_root_backward_through_a_custom_none_is_confirmed(tmp_path, monkeypatch, capsys):
    rep = _check(tmp_path, monkeypatch, capsys, """\
        class Cut(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()
            @staticmethod
            def backward(ctx, g):
                return None
        a, b = nn.Linear(3, 5), nn.Linear(3, 2)
        opt = torch.optim.SGD([*a.parameters(), *b.parameters()], 0.1)
        ps = [*a.parameters(), *b.parameters()]
        for it in range(2):
            x = torch.randn(4, 3)
            l1 = Cut.apply(a(x)).sum()
            l2 = b(x).sum()
            O(l1, ps, it == 0); O(l2, ps, it == 0)
            opt.zero_grad(); torch.autograd.backward([l1, l2]); opt.step()
        """, 2)
    assert rep["reaches"]["l1"] == []
    assert {d["name"] for d in rep["detached"] if d["kind"] == "unreached"} == {"a.weight", "a.bias"}


def test_an_optimizer_that_never_steps_is_bounded_and_not_judged(tmp_path, monkeypatch, capsys):
    rep = _check(tmp_path, monkeypatch, capsys, """\
        net, extra = nn.Linear(3, 5), nn.Linear(3, 2)
        opt = torch.optim.SGD(net.parameters(), 0.1)
        opt_later = torch.optim.SGD(extra.parameters(), 0.1)   # for a later phase, never reached here
        for it in range(100):
            loss = net(torch.randn(4, 3)).pow(2).mean()
            O(loss, [*net.parameters(), *extra.parameters()], it < 32)
            opt.zero_grad(); loss.backward(); opt.step()
        """, 32)
    assert any("bounded" in n for n in rep["notes"])
    assert any("opt_later did not step" in n and "extra.weight" in n for n in rep["notes"])
    assert not [d for d in rep["detached"] if d["name"].startswith("extra")]


def test_steps_two_captures_two_rounds_of_the_optimizers(tmp_path, monkeypatch, capsys):
    script = _write(tmp_path, """\
        D, G = nn.Linear(4, 1), nn.Linear(2, 4)
        opt_d, opt_g = torch.optim.SGD(D.parameters(), 0.1), torch.optim.SGD(G.parameters(), 0.1)
        for it in range(5):
            d_loss = D(G(torch.randn(3, 2)).detach()).mean()
            opt_d.zero_grad(); d_loss.backward(); opt_d.step()
            g_loss = -D(G(torch.randn(3, 2))).mean()
            opt_g.zero_grad(); g_loss.backward(); opt_g.step()
            open("it.txt", "w").write(str(it))
        """)
    rc, rep, err = _render(script, monkeypatch, capsys, "--steps", "2")
    assert rc == 0, err
    assert len(rep["losses"]) == 4
    assert (tmp_path / "it.txt").read_text() == "0"  # stopped inside the second round's opt_g.step()


# -- the CLI as a process: threads left running, finally/atexit, child processes ----------------

def _cli_process(tmp_path: Path, script: Path, *extra: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("GP_ORACLE", None)
    return subprocess.run([sys.executable, "-m", "graphprobe", "render", str(script), "-o", "out.json", *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


NON_DAEMON = """\
    import atexit, threading, time
    stop = threading.Event()
    def heartbeat():
        while not stop.is_set():
            time.sleep(0.02)
    threading.Thread(target=heartbeat, name="heartbeat").start()   # non-daemon
    net = nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), 0.1)
    atexit.register(lambda: open("atexit.txt", "w").write("ran"))
    try:
        for it in range(3):
            loss = net(torch.randn(4, 3)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    finally:
        torch.save(net.state_dict(), "ckpt.pt")
        stop.set()
        open("finally.txt", "w").write("ran")
"""


@pytest.mark.slow
def test_non_daemon_thread_does_not_hang_and_a_stopped_script_saves_nothing(tmp_path):
    script = _write(tmp_path, NON_DAEMON.replace("        stop.set()\n", ""))  # the loop never stops it
    p = _cli_process(tmp_path, script, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "out.json").read_text())["reaches"]["loss"] == ["net.weight", "net.bias"]
    assert (tmp_path / "finally.txt").exists()  # finally: blocks run (they release resources) ...
    assert not (tmp_path / "ckpt.pt").exists()  # ... but the 1-step model is not saved
    assert not (tmp_path / "atexit.txt").exists()  # and the script's atexit handlers don't run
    assert "skipped 1 torch.save (ckpt.pt)" in p.stderr and "atexit" in p.stderr
    assert "heartbeat" in p.stderr


@pytest.mark.slow
def test_keep_running_lets_finally_and_atexit_save(tmp_path):
    script = _write(tmp_path, NON_DAEMON)
    p = _cli_process(tmp_path, script, "--keep-running", timeout=60)
    assert p.returncode == 0, p.stderr
    for f in ("finally.txt", "ckpt.pt", "atexit.txt"):
        assert (tmp_path / f).exists(), f


HOGWILD = """\
    import torch.multiprocessing as mp
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.head = nn.Linear(3, 5), nn.Linear(5, 2)
        def forward(self, x):
            return self.head(torch.relu(self.enc(x)))
    def train(rank, model):
        torch.manual_seed(rank)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for it in range(5):
            optimizer.zero_grad()
            loss = model(torch.randn(4, 3)).pow(2).mean()
            loss.backward()
            optimizer.step()
    if __name__ == "__main__":
        mp.set_start_method(sys.argv[1], force=True)
        model = Net()
        model.share_memory()
        procs = [mp.Process(target=train, args=(r, model)) for r in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        open("parent_end.txt", "w").write("ran")
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_hogwild_child_processes_each_report(tmp_path, method):
    script = _write(tmp_path, HOGWILD)
    p = _cli_process(tmp_path, script, method, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "never called backward" not in p.stderr + p.stdout
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("out.")) == \
        ["out.child1.json", "out.child2.json", "out.json"]
    for f in ("out.json", "out.child1.json", "out.child2.json"):
        rep = json.loads((tmp_path / f).read_text())
        assert sorted(rep["reaches"]["loss"]) == sorted(
            ["model.enc.weight", "model.enc.bias", "model.head.weight", "model.head.bias"]), f
    assert any("child process" in n for n in json.loads((tmp_path / "out.json").read_text())["notes"])
    assert not (tmp_path / "parent_end.txt").exists()  # the parent stopped once its children reported


AOT = """\
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    cnet = torch.compile(net, backend="aot_eager")
    for step in range(3):
        loss = cnet(torch.randn(16, 4)).pow(2).mean()
        O(loss, net.parameters(), step == 0)
        opt.zero_grad(); loss.backward(); opt.step()
    open("end.txt", "w").write("done")
"""


@pytest.mark.slow
@pytest.mark.parametrize("keep", [False, True])
def test_aot_eager_loop(tmp_path, monkeypatch, capsys, keep):
    import torch._dynamo

    script = _write(tmp_path, AOT)
    torch._dynamo.reset()  # a compile cached by an earlier test would be reused by the plain run
    want = _oracle(script, monkeypatch)
    (tmp_path / "end.txt").unlink()  # the plain run's
    torch._dynamo.reset()  # compile again, under graphprobe: its aot_autograd grad calls are torch's own
    rc, rep, err = _render(script, monkeypatch, capsys, *(["--keep-running"] if keep else []))
    assert rc == 0, err
    assert _reach_by_shape(rep) == want and len(want) == 1
    assert not [d for d in rep["detached"] if d["kind"] == "unreached"]
    assert not rep["errors"]
    assert (tmp_path / "end.txt").exists() == keep  # with --keep-running the script runs to its end


def test_a_crash_of_graphprobe_at_the_step_end_is_graphprobes_not_the_scripts(tmp_path, monkeypatch, capsys):
    import graphprobe.run.capture as capture

    def broken(*args, **kwargs):
        raise ValueError("broken walk")

    monkeypatch.setattr(capture, "build_report", broken)
    script = _write(tmp_path, """\
        net = nn.Linear(3, 2)
        opt = torch.optim.SGD(net.parameters(), 0.1)
        for it in range(3):
            try:
                loss = net(torch.randn(4, 3)).sum()
                opt.zero_grad(); loss.backward(); opt.step()
            except Exception as e:   # the script's own handler never sees graphprobe's crash
                open("caught.txt", "w").write(repr(e))
        """)
    rc, rep, err = _render(script, monkeypatch, capsys)
    assert rc == 70 and "internal error" in err and "broken walk" in err
    assert not (tmp_path / "caught.txt").exists()
