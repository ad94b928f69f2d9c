"""Everything graphprobe patches is put back, on every way out.

``trace()`` installs a TorchFunctionMode, wraps ``torch.from_numpy`` and ``np.asarray`` /
``np.array`` / ``np.ascontiguousarray``, registers global module forward (pre) hooks and global
optimizer step hooks; the runner also wraps ``Tensor.backward``, ``torch.autograd.backward`` and
``torch.autograd.grad``, and swaps ``sys.argv`` / ``sys.path``. After a normal exit, an
exception, a KeyboardInterrupt, ``sys.exit`` in the script and a stop after capture, all of it
must be as it was. Other threads are not recorded; a trace inside a trace is refused.
"""
from __future__ import annotations

import inspect
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.modules.module as module_mod
import torch.optim.optimizer as optim_mod
from torch import nn
from torch.overrides import _get_current_function_mode_stack

import graphprobe
from graphprobe import probe, trace
from graphprobe.cli import main
from graphprobe.record.tagged import TrackedArray
from graphprobe.record.recorder import active_trace

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# The originals, as this module first saw them (graphprobe installs nothing on import).
ORIGINALS = {
    "torch.from_numpy": torch.from_numpy,
    "np.asarray": np.asarray,
    "np.array": np.array,
    "np.ascontiguousarray": np.ascontiguousarray,
    "torch.Tensor.backward": torch.Tensor.backward,
    "torch.autograd.backward": torch.autograd.backward,
    "torch.autograd.grad": torch.autograd.grad,
}


def _current() -> dict:
    return {
        "torch.from_numpy": torch.from_numpy,
        "np.asarray": np.asarray,
        "np.array": np.array,
        "np.ascontiguousarray": np.ascontiguousarray,
        "torch.Tensor.backward": torch.Tensor.backward,
        "torch.autograd.backward": torch.autograd.backward,
        "torch.autograd.grad": torch.autograd.grad,
    }


def _hooks() -> dict:
    return {
        "forward": dict(module_mod._global_forward_hooks),
        "forward_pre": dict(module_mod._global_forward_pre_hooks),
        "forward_always": dict(module_mod._global_forward_hooks_always_called),
        "forward_kwargs": dict(module_mod._global_forward_hooks_with_kwargs),
        "opt_pre": dict(optim_mod._global_optimizer_pre_hooks),
        "opt_post": dict(optim_mod._global_optimizer_post_hooks),
    }


@pytest.fixture
def pristine():
    """Check, before and after the test, that nothing of graphprobe is installed."""
    def check(where: str) -> None:
        cur = _current()
        for name, orig in ORIGINALS.items():
            assert cur[name] is orig, f"{where}: {name} is {cur[name]!r}"
            assert "graphprobe" not in (getattr(cur[name], "__module__", None) or ""), name
        assert _get_current_function_mode_stack() == [], where
        assert torch._C._len_torch_function_stack() == 0, where
        assert _hooks() == before_hooks, where
        assert active_trace() is None, where

    before_hooks = _hooks()
    # Nothing of ours (the suite's other tests leave nothing either).
    assert not any(before_hooks.values())
    check("before")
    argv, path = list(sys.argv), list(sys.path)
    main_mod = sys.modules["__main__"]
    yield check
    check("after")
    assert sys.argv == argv
    assert sys.path == path
    assert sys.modules["__main__"] is main_mod


def _installed() -> None:
    """Assert that a trace is in place right now (so the restore checks test something)."""
    assert torch.from_numpy is not ORIGINALS["torch.from_numpy"]
    assert np.asarray is not ORIGINALS["np.asarray"]
    assert len(_get_current_function_mode_stack()) == 1
    assert module_mod._global_forward_pre_hooks and module_mod._global_forward_hooks
    assert optim_mod._global_optimizer_pre_hooks and optim_mod._global_optimizer_post_hooks
    assert isinstance(active_trace(), graphprobe.Trace)


def _cut_step():
    torch.manual_seed(0)
    net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
    tmp = net1(torch.ones(2, 3))
    loss1 = tmp.sum()
    arr = tmp.detach().numpy() * 0.5  # CUT
    loss2 = net2(torch.from_numpy(arr)).sum()
    return loss1, loss2, arr, net1, net2


# -- trace() on its own ---------------------------------------------------------------------------

def test_restored_after_normal_exit(pristine):
    with trace() as t:
        _installed()
        loss1, loss2, arr, net1, net2 = _cut_step()
        r = probe(loss1, loss2)
    pristine("normal exit")
    assert not t.active
    assert len(r.cuts) == 1
    # Values handed out during the trace stay usable, and numpy works as before.
    assert isinstance(arr, np.ndarray)
    assert type(np.asarray([1.0, 2.0])) is np.ndarray
    assert type(torch.ones(2).numpy()) is np.ndarray
    assert type(torch.ones(2, requires_grad=True).detach().numpy() * 2) is np.ndarray
    assert type(torch.ones(()).item()) is float


def test_restored_after_exception(pristine):
    with pytest.raises(ValueError, match="inside the trace"):
        with trace():
            _installed()
            _cut_step()
            raise ValueError("inside the trace")
    pristine("exception")


def test_restored_after_keyboard_interrupt(pristine):
    with pytest.raises(KeyboardInterrupt):
        with trace():
            _installed()
            _cut_step()
            raise KeyboardInterrupt
    pristine("KeyboardInterrupt")


def test_restored_after_interrupt_inside_a_module_forward(pristine):
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(3, 3)

        def forward(self, x):
            h = self.inner(x)
            h.detach().numpy()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with trace():
            Boom()(torch.ones(2, 3))
    pristine("KeyboardInterrupt in forward")
    # The next trace starts clean: module ownership is not stuck on Boom.
    with trace():
        loss1, loss2, _, net1, net2 = _cut_step()
        r = probe(loss1, loss2)
    assert r.cuts[0]["from"]["module"] == "net1" and r.cuts[0]["to"]["module"] == "net2"


def test_restored_after_exception_inside_optimizer_step(pristine):
    class BadOpt(torch.optim.SGD):
        def step(self, closure=None):  # the step hooks wrap this
            raise RuntimeError("optimizer broke")

    net = nn.Linear(3, 1)
    opt = BadOpt(net.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="optimizer broke"):
        with trace():
            net(torch.ones(2, 3)).sum().backward()
            opt.step()
    pristine("exception in step")
    # And a later trace still records (it is not stuck in "inside the optimizer").
    with trace():
        loss1, loss2, _, net1, net2 = _cut_step()
        assert len(probe(loss1, loss2).cuts) == 1


def test_nested_trace_is_refused_clearly(pristine):
    with trace() as outer:
        with pytest.raises(graphprobe.GraphprobeError, match="already active"):
            with trace():
                pass  # pragma: no cover
        # The refusal leaves the outer trace working and installed once.
        _installed()
        assert active_trace() is outer
        loss1, loss2, _, net1, net2 = _cut_step()
        r = probe(loss1, loss2)
    assert len(r.cuts) == 1 and r.cuts[0]["kind"] == "numpy"
    pristine("nested")


def test_trace_can_be_used_again_after_exit(pristine):
    t = trace()
    for _ in range(2):
        with t:
            _installed()
            loss1, loss2, _, net1, net2 = _cut_step()
            assert len(probe(loss1, loss2).cuts) == 1
        pristine("reuse")


def test_other_thread_is_not_recorded_and_not_broken(pristine):
    def work(n: int) -> list:
        net = nn.Linear(3, 3)
        with torch.no_grad():  # no RNG: the main thread reseeds it meanwhile
            net.weight.copy_(torch.arange(9.0).reshape(3, 3) * 0.05 - 0.2)
            net.bias.fill_(0.1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        seen = []
        for _ in range(n):
            a = net(torch.ones(2, 3))
            arr = np.clip(a.detach().numpy() * 0.5, -1.0, 1.0)
            arr2 = np.asarray(arr)
            b = torch.from_numpy(np.concatenate([arr2, arr2]))
            v = a.sum().item()
            loss = net(b).sum() * v
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append((type(arr), type(arr2), type(v), float(loss.item()),
                         "graphprobe_module" in (a.grad_fn.metadata if a.grad_fn else {})))
        return seen

    expected = work(30)  # untraced, same seed
    got: list = []
    errors: list = []

    def target():
        try:
            got.extend(work(30))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with trace() as t:
        th = threading.Thread(target=target)
        th.start()
        for _ in range(30):
            loss1, loss2, _, net1, net2 = _cut_step()
        th.join(timeout=120)
        assert not th.is_alive()
        r = probe(loss1, loss2)
        records = t.cut_records()
    assert errors == []
    assert got == expected
    assert all(s[0] is np.ndarray and s[1] is np.ndarray and s[2] is float and not s[4] for s in got)
    # Only the main thread's cut, at _cut_step's line.
    lines, start = inspect.getsourcelines(_cut_step)
    line = start + next(i for i, text in enumerate(lines) if "# CUT" in text)
    assert records and all(rec.location.endswith(f"test_restore.py:{line}") for rec in records)
    assert len(r.cuts) == 1 and r.cuts[0]["from"]["module"] == "net1"
    pristine("thread")


def test_tracked_array_outlives_the_trace_harmlessly(pristine):
    with trace():
        _, _, arr, _, _ = _cut_step()
    pristine("exit")
    assert isinstance(arr, TrackedArray)
    # Used after the trace: plain numpy results, plain tensors.
    y = np.clip(arr * 2.0, 0.0, 10.0)
    assert np.array_equal(np.asarray(y), np.clip(arr.view(np.ndarray) * 2.0, 0.0, 10.0))
    t = torch.from_numpy(np.ascontiguousarray(y))
    assert t.shape == (2, 3)
    pristine("after use")


# -- the runner: a script under `graphprobe render` -------------------------------------------------

SCRIPTS = {
    "exit3_after_backward.py": (
        "import sys, torch\n"
        "x = torch.ones(2, requires_grad=True)\n"
        "(x * 2).sum().backward()\n"
        "sys.exit(3)\n"
    ),
    "raise_after_backward.py": (
        "import torch\n"
        "x = torch.ones(2, requires_grad=True)\n"
        "(x * 2).sum().backward()\n"
        "raise RuntimeError('late failure')\n"
    ),
    "raise_before_backward.py": (
        "import numpy as np, torch\n"
        "x = torch.ones(2, requires_grad=True)\n"
        "y = torch.from_numpy(x.detach().numpy())\n"
        "raise RuntimeError('early failure')\n"
    ),
    "interrupt_before_backward.py": (
        "import torch\n"
        "x = torch.ones(2, requires_grad=True)\n"
        "y = torch.from_numpy(x.detach().numpy())\n"
        "raise KeyboardInterrupt\n"
    ),
    "interrupt_after_first_backward.py": (
        "import torch\n"
        "x = torch.ones(2, requires_grad=True)\n"
        "for i in range(3):\n"
        "    (x * 2).sum().backward()\n"
        "    if i == 0:\n"
        "        raise KeyboardInterrupt\n"
    ),
    "grad_twice.py": (
        "import torch\n"
        "x = torch.ones(2, requires_grad=True)\n"
        "y = (x * x).sum()\n"
        "g, = torch.autograd.grad(y, x)\n"
        "torch.autograd.backward([(x * 3).sum()])\n"
        "y.backward()\n"
    ),
}


@pytest.mark.parametrize("name, code, wrote", [
    ("exit3_after_backward.py", None, True),
    ("raise_after_backward.py", None, True),
    ("raise_before_backward.py", 3, False),
    ("interrupt_before_backward.py", 130, False),
    ("interrupt_after_first_backward.py", 130, True),
    ("grad_twice.py", 6, True),
])
def test_restored_after_render(pristine, tmp_path, monkeypatch, capsys, name, code, wrote):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / name
    script.write_text(SCRIPTS[name])
    rc = main(["render", str(script), "-o", "out.json", "-q"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if code is not None:
        assert rc == code, err
    else:
        assert rc in (0, 3), err  # the capture worked; the script's own status is its business
    assert (tmp_path / "out.json").is_file() == wrote
    pristine(name)


def test_restored_after_stop_after_capture(pristine, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for sample in ("case4_numpy.py", "cut_no_grad.py", "cut_nested_module.py"):
        rc = main(["render", str(SAMPLES / sample), "-o", "out.json", "-q"])
        assert rc == 0
        out = capsys.readouterr().out
        assert "loss" not in out  # stopped: the script's last print never ran
        pristine(sample)


def test_restored_after_keep_running(pristine, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(["render", str(SAMPLES / "case4_numpy.py"), "-o", "out.json", "-q", "--keep-running"])
    assert rc == 0
    assert "loss1=" in capsys.readouterr().out
    pristine("keep-running")


def test_restored_after_check_of_crashing_script(pristine, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(["check", str(SAMPLES / "case2_backward_twice.py"), "-q"])
    assert rc == 6
    pristine("check case2")


def test_runner_patches_backward_only_while_running(tmp_path, monkeypatch, capsys):
    """While the script runs, backward is wrapped (so the capture is real); after, it is not."""
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "look.py"
    script.write_text(
        "import torch, numpy as np\n"
        "wrapped = (torch.Tensor.backward.__module__, torch.autograd.grad.__module__,\n"
        "           torch.from_numpy.__module__ if hasattr(torch.from_numpy, '__module__') else '')\n"
        "print('WRAPPED', *wrapped)\n"
        "x = torch.ones(2, requires_grad=True)\n"
        "(x * 2).sum().backward()\n"
    )
    assert main(["render", str(script), "-o", "out.json", "-q"]) == 0
    out = capsys.readouterr().out
    mods = out.split("WRAPPED", 1)[1].split()
    assert all(m.startswith("graphprobe") for m in mods), mods
    assert torch.Tensor.backward is ORIGINALS["torch.Tensor.backward"]
    assert torch.autograd.grad is ORIGINALS["torch.autograd.grad"]
    assert torch.from_numpy is ORIGINALS["torch.from_numpy"]
