"""Tags follow data through *writes*, not only through what an op returns.

Each program below runs under ``trace()`` and is probed; ``depth`` is upstream of the write,
``det`` downstream. The reach sets must equal ``torch.autograd.grad``'s, and the cut must be
reported with its kind at the line marked ``# EXIT`` (found in the source, never hard-coded).
Then: tags that stay live through 300 ``.item()`` logging calls, in-place writes into no-grad
views of parameters, a user's own ``TorchFunctionMode`` and torch.compile under the trace.
"""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from graphprobe import probe, trace
from graphprobe.record.tagged import _get_prov
from graphprobe.record.modestack import _mode_stack

_ORIG_EXIT = TorchFunctionMode.__exit__

HERE = os.path.basename(__file__)
X = torch.linspace(-1.0, 1.0, 32).reshape(8, 4)


def _marker_lines(fn, marker: str = "# EXIT") -> list[int]:
    lines, start = inspect.getsourcelines(fn)
    return [start + i for i, text in enumerate(lines) if marker in text]


def _line(loc: str | None) -> int:
    assert loc, loc
    path, _, line = loc.rpartition(":")
    assert os.path.basename(path) == HERE, loc
    return int(line)


@pytest.fixture
def nets():
    torch.manual_seed(0)
    depth, det = nn.Linear(4, 4), nn.Linear(4, 2)
    # As a training script does before its loop: building an optimizer loads torch.compile's
    # machinery, after which graphprobe can watch torch.Tensor(arr) (see trace._maybe_patch_new).
    torch.optim.SGD(list(depth.parameters()) + list(det.parameters()), 0.1)
    return depth, det


def _oracle(loss, named: dict[str, nn.Module]) -> set[str]:
    ps = [(f"{m}.{n}", p) for m, mod in named.items() for n, p in mod.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in ps], allow_unused=True, retain_graph=True)
    return {n for (n, _), g in zip(ps, grads) if g is not None}


def run(program, nets, kinds: list[str] | None = None):
    """Run ``program(depth, det)`` traced; check reach against autograd, and the cuts' kinds and
    lines against the ``# EXIT`` markers. Returns the report."""
    depth, det = nets
    with trace():
        loss = program(depth, det)
        r = probe(loss, params={"depth": depth, "det": det}, names=["loss"])
    assert set(r.reaches["loss"]) == _oracle(loss, {"depth": depth, "det": det})
    exits = _marker_lines(program)
    # A no_grad cut's location is its `with` line; the op inside it is exit_location.
    got = sorted((c["kind"], _line(c.get("exit_location") or c["location"])) for c in r.cuts)
    if kinds is not None:
        assert got == sorted(zip(kinds, exits)), (got, exits, r.cuts)
        assert all(c["blocked"] for c in r.cuts), r.cuts
    return r


# -- torch writes -------------------------------------------------------------------------------

def w_setitem_data(depth, det):  # the repro
    d = depth(X)
    buf = torch.zeros(8, 4)
    buf[:] = d.data  # EXIT
    return det(buf).mean()


def w_setitem_rows(depth, det):
    d = depth(X)
    buf = torch.zeros(8, 4)
    for i in range(8):
        buf[i] = d[i].detach()  # EXIT
    return det(buf).mean()


def w_copy(depth, det):
    d = depth(X)
    buf = torch.empty(8, 4)
    buf.copy_(d.detach())  # EXIT
    return det(buf).mean()


def w_view_copy(depth, det):
    d = depth(X)
    buf = torch.zeros(16, 4)
    buf[:8].copy_(d.detach())  # EXIT
    return det(buf).mean()


def w_index_put(depth, det):
    d = depth(X)
    buf = torch.zeros(8, 4)
    buf.index_put_((torch.arange(8),), d.detach())  # EXIT
    return det(buf).mean()


def w_scatter(depth, det):
    d = depth(X)
    buf = torch.zeros(8, 4)
    buf.scatter_(0, torch.arange(8).unsqueeze(1).expand(8, 4), d.detach())  # EXIT
    return det(buf).mean()


def w_index_add(depth, det):
    d = depth(X)
    buf = torch.zeros(4, 4)
    buf.index_add_(0, torch.arange(8) % 4, d.data)  # EXIT
    return det(buf).mean()


def w_masked_scatter(depth, det):
    d = depth(X)
    buf = torch.zeros(8, 4)
    buf.masked_scatter_(torch.ones(8, 4, dtype=torch.bool), d.detach())  # EXIT
    return det(buf).mean()


def w_out_arg(depth, det):
    d = depth(X)
    buf = torch.empty(8, 4)
    torch.mul(d.detach(), 2.0, out=buf)  # EXIT
    return det(buf).mean()


def w_no_grad_voxelizer(depth, det):
    d = depth(X)
    grid = torch.zeros(4, 4)  # a BEV grid of 4 cells
    cells = (torch.arange(8) * 3) % 4
    with torch.no_grad():
        grid.scatter_add_(0, cells.unsqueeze(1).expand(8, 4), d)  # EXIT
        count = torch.zeros(4, 1).index_add_(0, cells, torch.ones(8, 1))
        grid.div_(count.clamp(min=1))  # scatter_mean, as torch_scatter builds it
    return det(grid).mean()


def w_no_grad_out(depth, det):
    d = depth(X)
    buf = torch.empty(8, 4)
    with torch.no_grad():
        torch.tanh(d, out=buf)  # EXIT
    return det(buf).mean()


def w_no_grad_setitem(depth, det):
    d = depth(X)
    buf = torch.zeros(8, 4)
    with torch.no_grad():
        buf[:, :2] = d[:, :2]  # EXIT
    return det(buf).mean()


def w_two_origins(depth, det):
    d = depth(X)
    e = d * 2.0
    buf = torch.zeros(16, 4)
    buf[:8] = d.detach()  # EXIT
    buf[8:] = e.data  # EXIT
    return det(buf).mean()


def w_new_tensor(depth, det):
    d = depth(X)
    buf = X.new_tensor(d.detach().numpy())  # EXIT
    return det(buf).mean()


def w_tensor_ctor(depth, det):
    d = depth(X)
    buf = torch.Tensor(d.detach().numpy())  # EXIT
    return det(buf).mean()


def w_tensor_of_scalars(depth, det):
    d = depth(X)
    col = torch.tensor([d[i, 0] for i in range(8)])  # EXIT
    return det(X * col.unsqueeze(1)).mean()


def w_stack_detached(depth, det):
    d = depth(X)
    buf = torch.stack([d[i].detach() for i in range(8)])  # EXIT
    return det(buf).mean()


def w_cat_detached(depth, det):
    d = depth(X)
    buf = torch.cat([d[:4].detach(), d[4:].detach()])  # EXIT
    return det(buf).mean()


def w_written_then_numpy(depth, det):
    d = depth(X)
    buf = torch.zeros(8, 4)
    buf[:] = d.detach()  # EXIT
    return det(torch.from_numpy(buf.numpy() * 0.5)).mean()


def w_grad_target(depth, det):
    d = depth(X)
    h = torch.tanh(X) * det.weight[0, 0]  # requires grad: the write is recorded by autograd
    h[:, 1] = d[:, 1].detach()  # EXIT
    return det(h).mean()


def w_no_grad_stack_of_views(depth, det):
    d = depth(X)
    with torch.no_grad():
        bev = torch.stack([d[:, 0], d[:, 1], d[:, 2], d[:, 3]], dim=1)  # EXIT
    return det(bev).mean()


TORCH_WRITES = [
    (w_no_grad_stack_of_views, ["no_grad"]),
    (w_setitem_data, ["data"]), (w_setitem_rows, ["detach"]), (w_copy, ["detach"]),
    (w_view_copy, ["detach"]), (w_index_put, ["detach"]), (w_scatter, ["detach"]),
    (w_index_add, ["data"]), (w_masked_scatter, ["detach"]), (w_out_arg, ["detach"]),
    (w_no_grad_voxelizer, ["no_grad"]), (w_no_grad_out, ["no_grad"]), (w_no_grad_setitem, ["no_grad"]),
    (w_two_origins, ["detach", "data"]), (w_new_tensor, ["numpy"]), (w_tensor_ctor, ["numpy"]),
    (w_tensor_of_scalars, ["detach"]), (w_stack_detached, ["detach"]), (w_cat_detached, ["detach"]),
    (w_written_then_numpy, ["numpy"]), (w_grad_target, ["detach"]),
]


@pytest.mark.parametrize("program,kinds", TORCH_WRITES, ids=[f.__name__ for f, _ in TORCH_WRITES])
def test_torch_write_carries_the_tag(nets, program, kinds):
    r = run(program, nets, kinds)
    assert not {"depth.weight", "depth.bias"} & set(r.reaches["loss"])


def test_untagged_writes_are_no_cut(nets):
    def program(depth, det):
        buf = torch.zeros(8, 4)
        buf[:] = X * 2.0
        buf.copy_(buf + 1.0)
        with torch.no_grad():
            buf.add_(X)
        return det(depth(buf)).mean()

    r = run(program, nets, [])
    assert r.cuts == []


def test_orthogonal_init_and_fill_under_no_grad_run_as_without_trace():
    def build():
        torch.manual_seed(0)
        lin, emb = nn.Linear(4, 4), nn.Embedding(5, 4)
        nn.init.orthogonal_(lin.weight)
        with torch.no_grad():
            emb.weight[0].fill_(0)
            lin.weight[1:3].mul_(0.5)
        return lin, emb

    plain = build()
    with trace():
        traced = build()
        loss = traced[0](traced[1](torch.tensor([0, 1, 2]))).sum()
        r = probe(loss, params={"lin": traced[0], "emb": traced[1]}, names=["loss"])
    for a, b in zip(plain, traced):
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb)
    assert set(r.reaches["loss"]) == {"lin.weight", "lin.bias", "emb.weight"}
    assert r.cuts == []


# -- numpy writes -------------------------------------------------------------------------------

def n_setitem(depth, det):  # the repro
    d = depth(X)
    out = np.zeros((8, 4), dtype=np.float32)
    out[:, 0] = d.detach().numpy()[:, 0]  # EXIT
    return det(torch.from_numpy(out)).mean()


def n_setitem_ravel(depth, det):
    d = depth(X)
    out = np.zeros((32, 3))
    out[:, 0] = d.detach().numpy().ravel()  # EXIT
    pts = torch.from_numpy(out).float()
    return det(pts[:8, :].repeat(1, 2)[:, :4]).mean()


class _Calib:
    """Our own camera model, written the way calibration code writes its result: a buffer from
    np.zeros, filled column by column from arrays computed from the depth."""

    def __init__(self) -> None:
        self.c_u, self.c_v, self.f_u, self.f_v = 2.0, 1.5, 7.0, 7.0

    def back_project(self, uvd: np.ndarray) -> np.ndarray:
        x = (uvd[:, 0] - self.c_u) * uvd[:, 2] / self.f_u
        y = (uvd[:, 1] - self.c_v) * uvd[:, 2] / self.f_v
        pts = np.zeros((uvd.shape[0], 4))
        pts[:, 0] = x
        pts[:, 1] = y
        pts[:, 2] = uvd[:, 2]
        return pts


def n_calibration(depth, det):
    d = depth(X)
    uvd = d.detach().cpu().numpy()[:, :3]  # EXIT
    pts = _Calib().back_project(uvd)
    return det(torch.from_numpy(pts).float()).mean()


def n_copyto(depth, det):
    d = depth(X)
    out = np.empty((8, 4), dtype=np.float32)
    np.copyto(out, d.detach().numpy())  # EXIT
    return det(torch.as_tensor(out)).mean()


def n_ufunc_out(depth, det):
    d = depth(X)
    out = np.ones((8, 4), dtype=np.float32)
    np.multiply(d.detach().numpy(), 0.5, out=out)  # EXIT
    return det(torch.tensor(out)).mean()


def n_iadd(depth, det):
    d = depth(X)
    out = np.full((8, 4), 0.25, dtype=np.float32)
    out += d.detach().numpy()  # EXIT
    return det(torch.from_numpy(out)).mean()


def n_put(depth, det):
    d = depth(X)
    out = np.zeros(32, dtype=np.float32)
    np.put(out, np.arange(32), d.detach().numpy())  # EXIT
    return det(torch.from_numpy(out.reshape(8, 4))).mean()


def n_plain_array_copyto(depth, det):
    d = depth(X)
    out = np.asarray(X.numpy() * 0.0)  # a plain ndarray, not one the trace watches
    np.copyto(out, d.detach().numpy())  # EXIT
    return det(torch.from_numpy(out)).mean()


def n_array_of_scalars(depth, det):
    d = depth(X)
    vals = [d[i, 0].item() for i in range(8)]  # EXIT
    col = np.array(vals, dtype=np.float32)
    return det(X * torch.from_numpy(col).unsqueeze(1)).mean()


def n_zeros_like_takes_no_tag(depth, det):
    d = depth(X)
    a = d.detach().numpy()  # EXIT
    out = np.zeros_like(a)  # the shape, not the data
    out[:, 1] = a[:, 1]
    return det(torch.from_numpy(out)).mean()


def n_two_origins(depth, det):
    d = depth(X)
    e = torch.tanh(d)
    out = np.zeros((8, 4), dtype=np.float32)
    out[:, 0] = d.detach().numpy()[:, 0]  # EXIT
    out[:, 1:] = e.data.numpy()[:, 1:]  # EXIT
    return det(torch.from_numpy(out)).mean()


def n_full_of_an_item(depth, det):
    d = depth(X)
    s = d.mean().item()  # EXIT
    return det(torch.from_numpy(np.full((8, 4), s, dtype=np.float32))).mean()


NUMPY_WRITES = [
    (n_full_of_an_item, ["item"]),
    (n_two_origins, ["numpy", "numpy"]),
    (n_setitem, ["numpy"]), (n_setitem_ravel, ["numpy"]), (n_calibration, ["numpy"]), (n_copyto, ["numpy"]),
    (n_ufunc_out, ["numpy"]), (n_iadd, ["numpy"]), (n_put, ["numpy"]), (n_plain_array_copyto, ["numpy"]),
    (n_array_of_scalars, ["item"]), (n_zeros_like_takes_no_tag, ["numpy"]),
]


@pytest.mark.parametrize("program,kinds", NUMPY_WRITES, ids=[f.__name__ for f, _ in NUMPY_WRITES])
def test_numpy_write_carries_the_tag(nets, program, kinds):
    run(program, nets, kinds)


def test_zeros_like_of_a_tracked_array_is_a_fresh_buffer(nets):
    depth, _ = nets
    with trace():
        a = depth(X).detach().numpy()
        assert _get_prov(a) is not None
        assert _get_prov(np.zeros_like(a)) is None
        assert _get_prov(np.zeros((2, 2))) is None


def test_watched_buffers_keep_numerics_and_values():
    with trace():
        out = np.zeros((3, 2))
        out[:, 0] = [1.0, 2.0, 3.0]
        r = out * 2 + 1
        back = np.asarray(out)
    assert isinstance(out, np.ndarray) and type(back) is np.ndarray and type(r) is np.ndarray
    assert np.array_equal(back, np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    assert np.array_equal(r, back * 2 + 1)


def test_library_allocations_stay_plain():
    import numpy.lib.stride_tricks  # noqa: F401 (numpy's own code)

    with trace():
        a = np.zeros(3)
        b = np.pad(np.ones(2), 1)  # numpy allocates inside: a plain array
    assert type(b) is np.ndarray
    assert isinstance(a, np.ndarray)


# -- Python scalars and lists -------------------------------------------------------------------

def s_round_comprehension(depth, det):
    d = depth(X)
    rows = [[round(v, 2) for v in row] for row in d.tolist()]  # EXIT
    return det(torch.tensor(rows)).mean()


def s_abs_round_item(depth, det):
    d = depth(X)
    s = abs(round(d.mean().item(), 3))  # EXIT
    return det(X * s).mean()


def s_floor_ceil(depth, det):
    import math

    d = depth(X)
    v = d.sum().item() * 100.0  # EXIT
    k = math.floor(v) - math.ceil(v) + math.trunc(v)
    return det(X * k).mean()


def s_array_tolist(depth, det):
    d = depth(X)
    a = d.detach().numpy() * 2.0  # EXIT
    rows = [[v * 0.5 for v in row] for row in a.tolist()]
    return det(torch.tensor(rows)).mean()


def s_array_item(depth, det):
    d = depth(X)
    a = d.detach().numpy()  # EXIT
    return det(X * a[0:1, 0].item()).mean()


SCALARS = [(s_array_tolist, ["numpy"]), (s_array_item, ["numpy"]),(s_round_comprehension, ["tolist"]), (s_abs_round_item, ["item"]), (s_floor_ceil, ["item"])]


@pytest.mark.parametrize("program,kinds", SCALARS, ids=[f.__name__ for f, _ in SCALARS])
def test_scalar_ops_keep_the_tag(nets, program, kinds):
    r = run(program, nets, kinds)
    assert not any(c["guess"] for c in r.cuts)


def test_float_of_a_tolist_value_is_linked_as_a_guess(nets):
    def program(depth, det):
        d = depth(X)
        rows = [[float(v) for v in row] for row in d.tolist()]  # EXIT
        return det(torch.tensor(rows)).mean()

    r = run(program, nets, ["tolist"])
    assert r.cuts[0]["guess"] is True


def test_no_value_match_without_evidence(nets):
    def program(depth, det):
        d = depth(X)
        _ = d.mean().item()
        return det(torch.tensor([[0.5, 0.25, 1.0, 2.0]] * 8)).mean()  # round numbers: no evidence

    r = run(program, nets, [])
    assert r.cuts == []


def test_scalar_tag_keeps_numerics(nets):
    depth, _ = nets
    with trace():
        v = depth(X).mean().item()
        got = (round(v, 2), abs(v), round(v), -v, +v)
    assert got == (round(float(v), 2), abs(float(v)), round(float(v)), -float(v), float(v))
    assert type(got[2]) is not float and int(got[2]) == round(float(v))


# -- tags stay while their data lives -----------------------------------------------------------

def test_300_item_logging_calls_between_exit_and_reentry(nets):
    def program(depth, det):
        d = depth(X)
        a = d.detach().numpy()  # EXIT
        history = []
        for step in range(300):  # logging, as training loops do
            loss = (det(X) ** 2).mean()
            history.append(loss.item())
            _ = f"{loss.item():.4f}"
        return det(torch.from_numpy(a)).mean() + 0.0 * sum(history)

    run(program, nets, ["numpy"])


def test_300_tagged_arrays_of_one_site_keep_the_oldest_alive(nets):
    depth, det = nets
    with trace() as t:
        d = depth(X)
        cols = [d.detach().numpy()[:, i % 4] * 1.0 for i in range(300)]
        first = cols[0]
        assert _get_prov(first) is not None  # still tagged, though 299 newer came after
        n_live = len(t._tagged)
        del cols
        assert len(t._tagged) < n_live  # dead values give their keys back
        assert _get_prov(first) is not None


def test_keys_go_with_their_values(nets):
    import gc

    depth, _ = nets
    with trace() as t:
        base = len(t._tagged)
        for _ in range(50):
            v = depth(X).mean().item() * 2.0
            a = depth(X).detach().numpy() + 1.0
        gc.collect()
        assert len(t._tagged) - base <= 4  # only v and a (and what they came from) are live
        del v, a


# -- a user's TorchFunctionMode, torch.compile ---------------------------------------------------

class Counting(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _program_with_cut(depth, det):
    return det(torch.from_numpy(depth(X).detach().numpy())).mean()


def test_user_mode_entered_inside_and_left_after(nets):
    before = _mode_stack()
    user = Counting()
    t = trace()
    t.__enter__()
    user.__enter__()
    loss = _program_with_cut(*nets)
    r = probe(loss, params={"depth": nets[0], "det": nets[1]}, names=["loss"])
    t.__exit__(None, None, None)
    assert _mode_stack()[-1] is user  # still on the stack, still seeing ops
    n = len(user.seen)
    torch.ones(2) + 1
    assert len(user.seen) > n
    user.__exit__(None, None, None)
    assert _mode_stack() == before
    assert "linear" in user.seen and [c["kind"] for c in r.cuts] == ["numpy"]


def test_user_mode_entered_before_and_left_inside(nets):
    before = _mode_stack()
    user = Counting()
    with user:
        with trace() as t:
            h = nets[0](X)
            user.__exit__(None, None, None)  # leaves while graphprobe's mode is on top of it
            user_ops = len(user.seen)
            loss = nets[1](torch.from_numpy(h.detach().numpy())).mean()
            r = probe(loss, trace=t, params={"depth": nets[0], "det": nets[1]}, names=["loss"])
            assert len(user.seen) == user_ops  # it left: it sees no more
        user.__enter__()  # balance the `with`
    assert _mode_stack() == before
    assert [c["kind"] for c in r.cuts] == ["numpy"]


def test_user_mode_around_the_trace_sees_every_op(nets):
    user = Counting()
    with user:
        with trace():
            loss = _program_with_cut(*nets)
            r = probe(loss, params={"depth": nets[0], "det": nets[1]}, names=["loss"])
        assert _mode_stack()[-1] is user
    assert "linear" in user.seen and "numpy" in user.seen
    assert [c["kind"] for c in r.cuts] == ["numpy"]
    assert _mode_stack() == []


@pytest.mark.slow
def test_torch_compile_under_trace_leaves_no_mode(nets, tmp_path):
    from graphprobe import cli

    script = tmp_path / "compiled.py"
    script.write_text(
        "import torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
        "net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))\n"
        "opt = torch.optim.SGD(net.parameters(), 0.1)\n"
        "cnet = torch.compile(net, backend='aot_eager')\n"
        "x = torch.randn(16, 4)\n"
        "for step in range(3):\n"
        "    opt.zero_grad()\n    loss = cnet(x).pow(2).mean()\n    loss.backward()\n    opt.step()\n"
        "open(__file__ + '.done', 'w').write(str(loss.item()))\n"
    )
    import torch.nn.modules.module as mm

    import torch._dynamo

    hooks = (dict(mm._global_forward_pre_hooks), dict(mm._global_forward_hooks))
    torch._dynamo.reset()
    try:
        code = cli.main(["render", str(script), "-o", str(tmp_path / "g.json"), "--keep-running", "-q"])
    finally:
        torch._dynamo.reset()  # compiled code of nn.Sequential.forward must not reach other tests
    assert code in (0, 1), code
    assert (tmp_path / "compiled.py.done").exists()  # the script ran to its end
    assert _mode_stack() == []
    assert (dict(mm._global_forward_pre_hooks), dict(mm._global_forward_hooks)) == hooks
    assert "__new__" not in torch.Tensor.__dict__ and TorchFunctionMode.__exit__ is _ORIG_EXIT


def test_nothing_of_graphprobe_on_the_mode_stack_after_cli_main(tmp_path):
    from graphprobe import cli

    script = tmp_path / "s.py"
    script.write_text(
        "import torch\nfrom torch import nn\nnet = nn.Linear(2, 1)\n"
        "for _ in range(2):\n    loss = net(torch.ones(1, 2)).sum()\n    loss.backward()\n"
    )
    for extra in ([], ["--keep-running"]):
        cli.main(["render", str(script), "-o", str(tmp_path / "g.json"), "-q", *extra])
        assert _mode_stack() == []


def test_exit_from_a_no_grad_view_points_at_its_base(nets):
    def program(depth, det):
        d = depth(X)
        with torch.no_grad():
            v = d[:, :2]
        a = v.detach().numpy()  # EXIT
        return det(torch.from_numpy(np.concatenate([a, a], axis=1))).mean()

    run(program, nets, ["numpy"])


def test_no_grad_in_place_on_a_tagged_buffer_keeps_its_exit(nets):
    def program(depth, det):
        d = depth(X)
        e = depth(X * 2.0)
        buf = torch.zeros(8, 4)
        buf[:] = d.detach()  # EXIT
        with torch.no_grad():
            buf.div_(2.0)  # not an exit: nothing here requires grad
            buf.add_(e)  # EXIT
        return det(buf).mean()

    r = run(program, nets, ["detach", "no_grad"])
    assert len(r.cuts) == 2


def _voxelize(d: torch.Tensor) -> torch.Tensor:
    """Our own small voxelizer: comparisons, then a scatter into a grid (not where a cut is made)."""
    keep = (d[:, 0] > -10.0) & (d[:, 1] < 10.0)
    grid = torch.zeros(4, 4)
    grid.index_add_(0, torch.arange(int(keep.sum())) % 4, d[keep])
    return grid


def test_no_grad_around_a_call_is_reported_at_the_with_line(nets):
    def program(depth, det):
        d = depth(X)
        with torch.no_grad():  # EXIT
            grid = _voxelize(d)
        return det(grid).mean()

    run(program, nets, ["no_grad"])


def test_no_grad_op_in_the_same_function_is_reported_at_the_op(nets):
    def program(depth, det):
        d = depth(X)
        with torch.no_grad():
            torch.set_grad_enabled(True)
            torch.set_grad_enabled(False)
            g = d * 2.0  # EXIT
        return det(g).mean()

    run(program, nets, ["no_grad"])


def test_a_crash_in_the_recorder_is_graphprobes_not_the_scripts(tmp_path, monkeypatch, capsys):
    from graphprobe import cli
    from graphprobe.record.recorder import Trace

    def broken(self, *args, **kwargs):
        raise ValueError("broken bookkeeping")

    monkeypatch.setattr(Trace, "_after_op", broken)
    script = tmp_path / "s.py"
    script.write_text(
        "import torch\nfrom torch import nn\nnet = nn.Linear(3, 2)\n"
        "try:\n    loss = net(torch.ones(4, 3)).sum()\n    loss.backward()\n"
        "except Exception as e:  # the script's own handler never sees graphprobe's crash\n"
        "    open(__file__ + '.caught', 'w').write(repr(e))\n"
    )
    rc = cli.main(["render", str(script), "-o", str(tmp_path / "g.json")])
    err = capsys.readouterr().err
    assert rc == 70 and "broken bookkeeping" in err, err
    assert not (tmp_path / "s.py.caught").exists()
    assert _mode_stack() == []
