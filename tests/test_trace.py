"""The recorder in-process: ``with graphprobe.trace():`` then ``graphprobe.probe(...)``.

Each way out of autograd (``.detach()``, ``.detach_()``, ``.data``, ``.numpy()``,
``.cpu().numpy()``, ``np.asarray``, ``.item()``, ``.tolist()``, ``no_grad``, ``inference_mode``)
and each way back in (``torch.from_numpy``, ``torch.tensor``, ``torch.as_tensor``,
``requires_grad_``, a grad-less tensor meeting a grad tensor in an op) is written once below; the
lines are found by the markers ``# EXIT`` and ``# BACK`` in the source. Then ``# graphprobe:
ignore``, the values handed back (types, numerics), and training that is bit-for-bit the same
with the recorder on.
"""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import torch
from torch import nn

import graphprobe
from graphprobe import probe, trace
from graphprobe.record.tagged import _get_prov
from graphprobe.record.recorder import active_trace

X = torch.ones(2, 3) * 0.2
T1 = torch.ones(2, 3) * 0.5
T2 = torch.ones(2, 3)
mse = nn.MSELoss()
NET1 = ["net1.weight", "net1.bias"]
NET2 = ["net2.weight", "net2.bias"]
HERE = os.path.basename(__file__)


def _marker_line(fn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    hits = [start + i for i, text in enumerate(lines) if marker in text]
    assert len(hits) == 1, (fn.__name__, marker, hits)
    return hits[0]


def _line(loc: str | None) -> int:
    assert loc, loc
    path, _, line = loc.rpartition(":")
    assert os.path.basename(path) == HERE, loc
    return int(line)


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return nn.Linear(3, 3), nn.Linear(3, 3)


# -- exits --------------------------------------------------------------------------------------
# Each returns the loss; net1 is upstream of the cut, net2 downstream.

def ex_detach(net1, net2):
    a = net1(X)
    b = a.detach()  # EXIT
    return mse(net2(b), T2)  # BACK


def ex_detach_inplace(net1, net2):
    a = net1(X) * 1.0
    a.detach_()  # EXIT
    return mse(net2(a), T2)  # BACK


def ex_data(net1, net2):
    a = net1(X)
    return mse(net2(a.data), T2)  # EXIT # BACK


def ex_numpy(net1, net2):
    a = net1(X)
    arr = a.detach().numpy()  # EXIT
    return mse(net2(torch.from_numpy(arr)), T2)  # BACK


def ex_cpu_numpy(net1, net2):
    a = net1(X)
    arr = a.detach().cpu().numpy()  # EXIT
    return mse(net2(torch.from_numpy(arr)), T2)  # BACK


def ex_np_asarray(net1, net2):
    a = net1(X)
    arr = np.asarray(a.detach())  # EXIT
    return mse(net2(torch.from_numpy(arr)), T2)  # BACK


def ex_item(net1, net2):
    s = net1(X).mean()
    v = s.item()  # EXIT
    return mse(net2(X * torch.tensor(v)), T2)  # BACK


def ex_item_scalar(net1, net2):
    s = net1(X).mean()
    v = s.item()  # EXIT
    return mse(net2(X * (v * 2.0)), T2)  # BACK


def ex_tolist(net1, net2):
    rows = net1(X).tolist()  # EXIT
    return mse(net2(torch.tensor(rows)), T2)  # BACK


def ex_no_grad(net1, net2):
    with torch.no_grad():
        a = net1(X)  # EXIT
    return mse(net2(a), T2)  # BACK


def ex_inference_mode(net1, net2):
    with torch.inference_mode():
        a = net1(X)  # EXIT
    return mse(net2(a.clone()), T2)  # BACK


EXITS = [
    (ex_detach, "detach"),
    (ex_detach_inplace, "detach"),
    (ex_data, "data"),
    (ex_numpy, "numpy"),
    (ex_cpu_numpy, "numpy"),
    (ex_np_asarray, "numpy"),
    (ex_item, "item"),
    (ex_item_scalar, "item"),
    (ex_tolist, "tolist"),
    (ex_no_grad, "no_grad"),
    (ex_inference_mode, ("no_grad", "inference_mode")),
]


@pytest.mark.parametrize("fn, kind", EXITS, ids=[f.__name__ for f, _ in EXITS])
def test_each_exit_kind_is_recorded(nets, fn, kind):
    net1, net2 = nets
    with trace() as t:
        loss = fn(net1, net2)
        r = probe(loss)
    assert len(t.cut_records()) >= 1
    assert len(r.cuts) == 1, r.cuts
    cut = r.cuts[0]
    if isinstance(kind, tuple):
        assert cut["kind"] in kind
    else:
        assert cut["kind"] == kind
    # A no_grad cut points at its `with` line (the line to change), the op inside it kept too.
    assert _line(cut.get("exit_location") or cut["location"]) == _marker_line(fn, "# EXIT")
    if cut["kind"] == "no_grad":
        assert _line(cut["location"]) == _marker_line(fn, "# EXIT") - 1
        assert "with torch." in cut["line"] and "no_grad()" in cut["fix"] or "inference_mode" in cut["line"]
    assert _line(cut["reentry_location"]) == _marker_line(fn, "# BACK")
    assert cut["from"]["module"] == "net1"
    assert cut["to"]["module"] == "net2"
    assert cut["blocked"] == [{"loss": "loss", "params": NET1}]
    assert cut["ignored"] is False
    assert sorted(r.reaches["loss"]) == sorted(NET2)
    assert len(r.components) == 2
    # the cut is drawn as an edge of the graph
    assert r.model.cut_edges and r.model.cut_edges[0][2] == 0


def test_cpu_numpy_chain_names_every_step(nets):
    net1, net2 = nets
    with trace():
        loss = ex_cpu_numpy(net1, net2)
        r = probe(loss)
    assert [s["op"] for s in r.cuts[0]["chain"]] == ["detach", "cpu", "numpy", "from_numpy"]


def test_round_trip_is_error_detach_alone_is_not(nets):
    """A numpy/item/tolist/.data round trip between two modules is an error; a bare detach is
    reported (it may be intended) but is not an error by itself."""
    net1, net2 = nets
    severities = {}
    for fn, _ in EXITS:
        with trace():
            loss = fn(net1, net2)
            severities[fn.__name__] = probe(loss).cuts[0]["severity"]
    for name in ("ex_data", "ex_numpy", "ex_cpu_numpy", "ex_np_asarray", "ex_item", "ex_tolist"):
        assert severities[name] == "error", (name, severities[name])
    assert severities["ex_detach"] != "error"


# -- re-entries -----------------------------------------------------------------------------------

def re_from_numpy(net1, net2):
    arr = net1(X).detach().numpy() * 0.5  # EXIT
    t = torch.from_numpy(arr)  # BACK
    return mse(net2(t), T2)  # MEET


def re_tensor(net1, net2):
    arr = net1(X).detach().numpy() * 0.5  # EXIT
    t = torch.tensor(arr)  # BACK
    return mse(net2(t), T2)  # MEET


def re_as_tensor(net1, net2):
    arr = net1(X).detach().numpy() * 0.5  # EXIT
    t = torch.as_tensor(arr)  # BACK
    return mse(net2(t), T2)  # MEET


def re_requires_grad(net1, net2):
    arr = net1(X).detach().numpy() * 0.5  # EXIT
    t = torch.from_numpy(arr)  # BACK
    t.requires_grad_(True)  # MEET
    return mse(net2(t), T2)


def re_meets_grad_tensor(net1, net2):
    c = net1(X).detach() * 3.0  # EXIT # BACK
    return mse(net2(X) * c, T2)  # MEET


REENTRIES = [
    (re_from_numpy, "from_numpy"),
    (re_tensor, "tensor"),
    (re_as_tensor, "as_tensor"),
    (re_requires_grad, "from_numpy"),
    (re_meets_grad_tensor, "mul"),
]


@pytest.mark.parametrize("fn, op", REENTRIES, ids=[f.__name__ for f, _ in REENTRIES])
def test_each_reentry_is_recorded(nets, fn, op):
    net1, net2 = nets
    with trace():
        loss = fn(net1, net2)
        r = probe(loss)
    assert len(r.cuts) == 1, r.cuts
    cut = r.cuts[0]
    chain = [(s["op"], _line(s["location"])) for s in cut["chain"]]
    assert (op, _marker_line(fn, "# BACK")) in chain, chain
    assert chain[0][1] == _line(cut["location"]) == _marker_line(fn, "# EXIT")
    assert _line(cut["reentry_location"]) == _marker_line(fn, "# MEET")
    assert cut["from"]["module"] == "net1"
    assert "net1.weight" in cut["blocked"][0]["params"]


def test_requires_grad_reentry_is_a_confirmed_leaf(nets):
    net1, net2 = nets
    with trace() as t:
        loss = re_requires_grad(net1, net2)
        r = probe(loss)
    rec = t.cut_records()[0]
    assert rec.made_requires_grad
    assert r.cuts[0]["severity"] == "error"
    leaves = [d for d in r.detached if d["kind"] == "reentry_leaf"]
    assert len(leaves) == 1 and leaves[0]["severity"] == "error"
    assert not r.ok


def test_grad_less_meeting_grad_tensor_points_at_the_op(nets):
    net1, net2 = nets
    with trace():
        loss = re_meets_grad_tensor(net1, net2)
        r = probe(loss)
    cut = r.cuts[0]
    assert cut["to"]["op"] == "MulBackward0"
    assert sorted(r.reaches["loss"]) == sorted(NET2)


def test_plain_data_is_no_cut(nets):
    """Fresh data (not from a tensor that required grad) re-entering is an input, not a cut."""
    net1, net2 = nets
    with trace() as t:
        a = torch.from_numpy(np.ones((2, 3), dtype=np.float32))
        b = torch.tensor([[0.5, 0.5, 0.5]]) * a
        loss = mse(net2(net1(b)), T2)
        v = loss.item()  # logging only: never re-enters
        r = probe(loss)
    assert isinstance(v, float)
    assert t.cut_records() == []
    assert r.cuts == [] and r.ok
    assert sorted(r.reaches["loss"]) == sorted(NET1 + NET2)


# -- graphprobe: ignore ---------------------------------------------------------------------------

def _two_losses(net1, net2):
    tmp = net1(X)
    loss1 = mse(tmp, T1)
    arr = tmp.detach().numpy() * 0.5
    loss2 = mse(net2(torch.from_numpy(arr)), T2)
    return loss1, loss2


def _two_losses_ignored(net1, net2):
    tmp = net1(X)
    loss1 = mse(tmp, T1)
    arr = tmp.detach().numpy() * 0.5  # graphprobe: ignore
    loss2 = mse(net2(torch.from_numpy(arr)), T2)
    return loss1, loss2


def test_ignore_comment_marks_cut_and_clears_ok(nets):
    net1, net2 = nets
    with trace():
        loss1, loss2 = _two_losses(net1, net2)
        plain = probe(loss1, loss2)
    assert len(plain.cuts) == 1 and plain.cuts[0]["severity"] == "error"
    assert plain.cuts[0]["ignored"] is False
    assert not plain.ok

    with trace():
        loss1, loss2 = _two_losses_ignored(net1, net2)
        ign = probe(loss1, loss2)
    assert len(ign.cuts) == 1
    assert ign.cuts[0]["ignored"] is True
    assert ign.cuts[0]["kind"] == "numpy"
    assert ign.ok
    assert ign.counts()["error"] == 0
    assert ign.to_dict()["findings"]["error"] == 0
    assert all(not c.get("ignored") for c in ign.findings() if "ignored" in c)


# -- what the traced script gets back -------------------------------------------------------------

def _numpy_pipeline(net1):
    a = net1(X)
    arr = a.detach().numpy()
    y = np.clip(arr * 0.5 + 1.0, 0.9, 1.2)
    z = np.concatenate([y, np.ones((2, 1), dtype=np.float32)], axis=1)
    w = np.asarray(z)[:, :2].reshape(-1)
    st = np.stack([w, w * 2.0])
    m = (w - w.mean()) / (w.std() + 1e-6)
    s = a.sum().item()
    lst = a.tolist()
    back = torch.from_numpy(np.ascontiguousarray(st))
    return {"arr": arr, "y": y, "z": z, "w": w, "st": st, "m": m, "s": s, "lst": lst,
            "s2": s * 3.0 - 1.0, "back": back}


def test_tracked_values_are_subclasses_with_identical_numerics(nets):
    net1, _ = nets
    ref = _numpy_pipeline(net1)
    with trace():
        got = _numpy_pipeline(net1)
        arr_type = type(got["arr"])
        y_type = type(got["y"])
    assert issubclass(arr_type, np.ndarray)
    assert issubclass(y_type, np.ndarray)
    for k in ("arr", "y", "z", "w", "st", "m"):
        assert isinstance(got[k], np.ndarray), k
        assert got[k].dtype == ref[k].dtype and got[k].shape == ref[k].shape, k
        assert np.array_equal(np.asarray(got[k]), ref[k]), k
        assert got[k].tobytes() == ref[k].tobytes(), k
    assert isinstance(got["s"], float) and got["s"] == ref["s"]
    assert isinstance(got["s2"], float) and got["s2"] == ref["s2"]
    assert got["lst"] == ref["lst"]
    assert torch.equal(got["back"], ref["back"])


def test_tracked_array_tag_points_at_the_exit(nets):
    net1, net2 = nets
    with trace():
        arr = net1(X).detach().numpy()  # EXIT-HERE
        y = np.clip(arr, 0.0, 1.0)
        prov = _get_prov(y)
    assert prov is not None
    assert _get_prov(y) is None  # the trace ended: its tags are gone with it
    assert prov.kind == "numpy"
    marker = "# EXIT" + "-HERE"
    assert _line(prov.location) == _marker_line(test_tracked_array_tag_points_at_the_exit, marker)
    assert [op for op, _ in prov.chain] == ["detach", "numpy", "np.clip"]


# -- training is bit-for-bit the same with the recorder on ----------------------------------------

def _train_case1(steps):
    torch.manual_seed(0)
    net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
    opt1 = torch.optim.Adam(net1.parameters(), 0.002)
    opt2 = torch.optim.Adam(net2.parameters(), 0.002)
    for _ in range(steps):
        tmp = net1(X)
        loss1 = mse(tmp, T1)
        loss2 = mse(net2(tmp), T2)
        tol_loss = loss2 + loss1
        opt1.zero_grad()
        opt2.zero_grad()
        tol_loss.backward()
        opt1.step()
        opt2.step()
    return [p.detach().clone() for m in (net1, net2) for p in m.parameters()]


def _train_case4(steps):
    torch.manual_seed(0)
    net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
    opt1 = torch.optim.Adam(net1.parameters(), 0.002)
    opt2 = torch.optim.Adam(net2.parameters(), 0.002)
    for _ in range(steps):
        tmp = net1(X)
        loss1 = mse(tmp, T1)
        tmp = torch.from_numpy(tmp.detach().numpy() * 0.5)
        tmp.requires_grad_(True)
        loss2 = mse(net2(tmp), T2)
        opt1.zero_grad()
        opt2.zero_grad()
        loss1.backward()
        loss2.backward()
        opt1.step()
        opt2.step()
    return [p.detach().clone() for m in (net1, net2) for p in m.parameters()]


def _train_numpy_loop(steps):
    torch.manual_seed(0)
    x = torch.rand(4, 3)
    net1, net2 = nn.Linear(3, 3), nn.Linear(4, 3)
    opt = torch.optim.SGD(list(net1.parameters()) + list(net2.parameters()), lr=0.05, momentum=0.9)
    for _ in range(steps):
        out1 = net1(x)
        loss1 = mse(out1, torch.full((4, 3), 0.5))
        arr = out1.detach().numpy()
        arr = np.clip((arr - arr.mean()) / (arr.std() + 1e-6), -2.0, 2.0)
        arr = np.concatenate([arr, np.ones((4, 1), dtype=np.float32)], axis=1)
        scale = loss1.item()
        feats = torch.as_tensor(arr) * (1.0 + scale)
        rows = torch.tensor(net1(x).tolist())
        loss2 = mse(net2(feats) + rows * 0.1, torch.ones(4, 3))
        opt.zero_grad()
        (loss1 + loss2).backward()
        opt.step()
    return [p.detach().clone() for m in (net1, net2) for p in m.parameters()]


@pytest.mark.parametrize("train", [_train_case1, _train_case4, _train_numpy_loop],
                         ids=["case1", "case4", "numpy_loop"])
def test_training_bit_identical_with_trace(train):
    plain = train(60)
    with trace() as t:
        traced = train(60)
    assert len(plain) == len(traced) == 4
    for a, b in zip(plain, traced):
        assert torch.equal(a, b)
    # and it really did train
    init = train(0)
    assert not any(torch.equal(a, b) for a, b in zip(init, plain))


def test_trace_records_cuts_while_training():
    with trace() as t:
        _train_case4(5)
        kinds = {r.kind for r in t.cut_records()}
    assert kinds == {"numpy"}
    with trace() as t:
        _train_numpy_loop(3)
        kinds = {r.kind for r in t.cut_records()}
    assert {"numpy", "tolist"} <= kinds


def test_trace_is_a_decorator_too(nets):
    net1, net2 = nets
    seen = {}

    @trace()
    def step():
        seen["active"] = isinstance(active_trace(), graphprobe.Trace)
        loss1, loss2 = _two_losses(net1, net2)
        return probe(loss1, loss2)

    r = step()
    assert seen["active"]
    assert active_trace() is None
    assert len(r.cuts) == 1 and r.cuts[0]["kind"] == "numpy"


def test_item_value_round_trip_is_linked_as_a_guess():
    import graphprobe as gp

    torch.manual_seed(0)
    net1, net2 = nn.Linear(3, 1), nn.Linear(3, 3)
    with gp.trace():
        v = net1(torch.ones(2, 3)).mean().item()
        plain = float(str(v))  # the tag is lost on the way through a string
        scale = torch.tensor(plain)
        loss = net2(torch.ones(2, 3) * scale).sum()
        r = gp.probe(loss)
    assert len(r.cuts) == 1
    c = r.cuts[0]
    assert c["kind"] == "item" and c["guess"] is True
    assert "value match" in [s["op"] for s in c["chain"]]
    assert "a guess" in r.to_text()


def test_tagged_values_pickle_as_plain_values_and_hold_no_graph(nets):
    import copy
    import gc
    import pickle
    import weakref

    net1, net2 = nets
    with trace():
        h = net1(X)
        v = h.sum().item()
        a = h.detach().numpy() * 2
        ref = weakref.ref(h)
    assert type(pickle.loads(pickle.dumps(v))) is float
    assert type(pickle.loads(pickle.dumps(a))) is np.ndarray
    assert type(copy.deepcopy(v)) is float
    buf = __import__("io").BytesIO()
    torch.save({"v": v, "a": a}, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    assert back["v"] == v and np.array_equal(back["a"], a)
    del h
    gc.collect()
    assert ref() is None  # the tagged float and array keep no autograd graph alive


def test_long_accumulation_stays_bounded(nets):
    net1, net2 = nets
    with trace() as t:
        acc = np.zeros((2, 3), dtype=np.float32)
        total = 0.0
        for _ in range(600):
            out = net1(X)
            acc = acc + out.detach().numpy()
            total += out.sum().item()
        # Structure, not seconds: the tag of a loop accumulator stays small (it grew by one
        # exit per step before, which made such loops quadratic).
        prov = _get_prov(acc)
        assert prov is not None and len(prov.chain) <= 12 and len(prov.parts) <= 16
        assert len(prov.source_fns) <= 16
        assert len(t._tagged) <= 256
