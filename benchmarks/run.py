"""graphprobe's benchmarks: every figure measured side by side in one run, medians over repeats.

Usage::

    python benchmarks/run.py                 # full run (about 5 minutes on 2 cores)
    python benchmarks/run.py --quick         # small sizes, under a minute
    python benchmarks/run.py --profile       # also cProfile probe() on the big graph
    python benchmarks/run.py --out PATH      # where to write the results (benchmarks/RESULTS.md)
    python benchmarks/run.py --only dot      # one section (gru, dot, trace, keep-running, render),
                                             # printed only; repeat --only for several

The figures are ratios against a baseline measured in the same process and the same run, so
they travel between machines better than seconds do. See benchmarks/README.md for what each
figure measures and why its target is what it is. CI does not run this.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import os
import platform
import pstats
import re
import runpy
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

import graphprobe

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "RESULTS.md")


# -- sizes ---------------------------------------------------------------------------------
@dataclass
class Sizes:
    gru_steps: int = 30_000       # GRUCell(8, 8) unrolled: ~16 autograd nodes a step
    repeats: int = 3
    layers: int = 24              # nn.TransformerEncoder depth
    trace_blocks: int = 6         # interleaved plain/traced blocks of training steps
    train_steps: int = 3          # timed training steps per block (transformer)
    tiny_steps: int = 100         # timed training steps per block (seed case 1)
    keep_steps: int = 200         # steps of the --keep-running script
    keep_repeats: int = 5
    render_timeout: float = 150.0  # wall limit for a render subprocess (the engine has its own 60 s)


FULL = Sizes()
QUICK = Sizes(gru_steps=3_000, repeats=3, layers=4, trace_blocks=4, train_steps=3, tiny_steps=50,
              keep_steps=200, keep_repeats=3, render_timeout=8.0)


# -- results -------------------------------------------------------------------------------
@dataclass
class Row:
    figure: str
    value: str
    target: str
    status: str
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: str, target: str, status: str, note: str = "") -> None:
        row = Row(figure, value, target, status, note)
        self.rows.append(row)
        print(f"  {status:9} {figure}: {value}   (target {target}){'  ' + note if note else ''}", flush=True)

    def ratio(self, figure: str, value: float, le: float | None = None, ge: float | None = None,
              aim: float | None = None, note: str = "") -> None:
        if le is not None:
            ok, target = value <= le, f"≤ {le:g}"
            aimed = aim is not None and value <= aim
        else:
            assert ge is not None
            ok, target = value >= ge, f"≥ {ge:g}"
            aimed = aim is not None and value >= aim
        if aim is not None:
            target += f" (aim {'≤' if le is not None else '≥'} {aim:g})"
        status = ("PASS" + (" +aim" if aimed else "")) if ok else "MISS"
        self.add(figure, f"{value:.3g}", target, status, note)

    def table(self) -> str:
        head = "| figure | value | target | status | measured |\n| --- | --- | --- | --- | --- |\n"
        return head + "".join(f"| {r.figure} | {r.value} | {r.target} | {r.status} | {r.note} |\n"
                              for r in self.rows)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def secs(x: float) -> str:
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, this thread's CPU seconds, and the result of ``fn()``."""
    gc.collect()
    w0, c0 = time.perf_counter(), time.thread_time()
    out = fn()
    return time.perf_counter() - w0, time.thread_time() - c0, out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# -- workloads -----------------------------------------------------------------------------
def gru_graph(steps: int) -> tuple[nn.Module, torch.Tensor]:
    """A ``GRUCell(8, 8)`` unrolled ``steps`` times: one long, narrow graph (~16 nodes a step)."""
    torch.manual_seed(0)
    cell = nn.GRUCell(8, 8)
    x = torch.randn(1, 8)
    h = torch.zeros(1, 8)
    for _ in range(steps):
        h = cell(x, h)
    return cell, h.sum()


def transformer(layers: int) -> tuple[nn.Module, torch.Tensor]:
    """``nn.TransformerEncoder``, d_model=128, 4 heads, feed-forward 512, and a 4x16 batch."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=512, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
    model.train()
    return model, torch.randn(4, 16, 128)


def probe_of(loss: torch.Tensor, params: Any = None) -> Any:
    """``graphprobe.probe(loss)`` from a frame of its own.

    ``probe()`` reads its caller's ``f_locals``; on Python 3.11 that snapshot then stays on the
    caller's frame and holds every local tensor until the caller returns, which defeats
    :func:`drop_deep`. Called from here, the snapshot dies with this frame.
    """
    return graphprobe.probe(loss, params=params)


def drop_deep(box: list[Any]) -> None:
    """Free the deep graphs held in ``box`` on a thread with a 1 GiB stack.

    Once Python has seen an autograd node (``grad_fn``, ``next_functions``), torch 2.13 frees the
    graph recursively through the nodes' Python wrappers (THPCppFunction_dealloc -> ~Node ->
    ...), not with its iterative deleter: freeing a 480k-node GRU graph on the main thread's 8 MiB
    stack is a segfault. A bare ``next_functions`` walk is enough to trigger it. Every other
    reference must be gone first (see :func:`probe_of`).
    """
    old = threading.stack_size(1 << 30)
    try:
        t = threading.Thread(target=box.clear)
        t.start()
        t.join()
    finally:
        threading.stack_size(old)
    gc.collect()


def bare_walk(root: Any) -> int:
    """The floor: visit every node behind ``root`` once, an explicit stack and a visited set."""
    seen = {root}
    stack = [root]
    while stack:
        fn = stack.pop()
        for nxt, _ in fn.next_functions:
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return len(seen)


def count_dot_nodes(dot: str) -> int:
    return len(re.findall(r"^\s*n\d+\s*\[", dot, flags=re.M))


# -- 1. probe() on the unrolled GRU --------------------------------------------------------
def bench_gru(sz: Sizes, res: Results) -> None:
    print(f"\n[probe on GRUCell(8, 8) x {sz.gru_steps:,} steps]", flush=True)
    t_build, (cell, loss) = timed(lambda: gru_graph(sz.gru_steps))
    # Warm up imports and caches on a small graph.
    warm = gru_graph(50)[1]
    probe_of(warm)
    bare_walk(warm.grad_fn)
    del warm

    def run_probe() -> Any:
        return probe_of(loss, {"cell": cell})

    t_probe, t_bare, t_bwd = [], [], []
    nodes = edges = walked = 0
    for _ in range(sz.repeats):
        dt, rep = timed(run_probe)
        t_probe.append(dt)
        nodes, edges = len(rep.model.kind), rep.model.number_of_edges
        del rep
        dt, walked = timed(lambda: bare_walk(loss.grad_fn))
        t_bare.append(dt)
        dt, _ = timed(lambda: loss.backward(retain_graph=True))
        t_bwd.append(dt)
    cell.zero_grad()
    p, b, w = med(t_probe), med(t_bwd), med(t_bare)
    print(f"  graph: {nodes:,} nodes, {edges:,} edges (bare walk: {walked:,} autograd nodes); "
          f"forward {secs(t_build)}", flush=True)
    res.add("GRU graph size", f"{nodes:,} nodes / {edges:,} edges", "~480k nodes" if sz is FULL else "—",
            "info", f"{sz.gru_steps:,} steps")
    res.ratio("probe() ÷ backward(retain_graph=True), GRU", p / b, le=1.0, aim=0.5,
              note=f"probe {secs(p)}, backward {secs(b)}")
    res.ratio("probe() ÷ bare next_functions walk, GRU", p / w, le=2.5, aim=1.5,
              note=f"probe {secs(p)}, bare walk {secs(w)}")

    # Peak memory of probe(): tracemalloc slows Python down, so it is measured on its own.
    gc.collect()
    tracemalloc.start()
    rep = run_probe()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(rep.model.kind)
    del rep
    box = [loss]
    del loss
    drop_deep(box)
    res.add("probe() peak memory per node, GRU", f"{peak / n:.0f} B/node",
            "≤ 1024 B/node", "PASS" if peak / n <= 1024 else "MISS",
            f"peak {peak / 2**20:.0f} MiB, report kept {current / 2**20:.0f} MiB ({current / n:.0f} B/node)")


def profile_probe(sz: Sizes, top: int = 15) -> str:
    print(f"\n[cProfile of probe() on GRUCell(8, 8) x {sz.gru_steps:,} steps]", flush=True)
    cell, loss = gru_graph(sz.gru_steps)

    def run_probe() -> Any:
        return probe_of(loss, {"cell": cell})

    run_probe()  # warm
    pr = cProfile.Profile()
    pr.enable()
    rep = run_probe()
    pr.disable()
    del rep
    box = [loss]
    del loss
    drop_deep(box)
    out = io.StringIO()
    st = pstats.Stats(pr, stream=out)
    st.sort_stats("tottime").print_stats(top)
    out.write("\n--- by cumulative time ---\n")
    st.sort_stats("cumulative").print_stats(top + 10)
    text = out.getvalue()
    # Keep the table, drop pstats' preamble of blank lines.
    text = "\n".join(line.rstrip() for line in text.splitlines() if line.strip())
    print(text, flush=True)
    return text


# -- 2. to_dot() against torchviz on a transformer ------------------------------------------
def bench_transformer_dot(sz: Sizes, res: Results) -> None:
    from torchviz import make_dot

    print(f"\n[probe().to_dot() vs torchviz make_dot().source, TransformerEncoder x {sz.layers}]", flush=True)
    model, x = transformer(sz.layers)
    loss = model(x).pow(2).mean()
    params = dict(model.named_parameters())
    modules = {"model": model}  # what probe() would find in a training script's frame

    def gp_default() -> str:
        return graphprobe.probe(loss, params=modules).to_dot()

    def gp_full() -> str:
        return graphprobe.probe(loss, params=modules).to_dot(budget=None)

    def torchviz() -> str:
        return make_dot(loss, params=params).source

    try:
        gp_full()
    except TypeError:  # a graphprobe whose to_dot() draws everything and has no budget
        gp_full = gp_default  # noqa: F811
    gp_default()  # warm
    recursion_note = ""
    try:
        torchviz()
    except RecursionError:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 100_000))
        recursion_note = f"torchviz hit RecursionError at the default limit {old}; raised to 100000"
        res.notes.append(recursion_note)
        torchviz()
    # Wall time and this thread's CPU time (torch runs on one thread here): the 2 cores are
    # shared, and a few-ms call preempted once by another process loses a whole time slice, so
    # the ratio is taken on CPU time and the wall-clock medians are given beside it.
    t_def, t_full, t_tv = [], [], []
    c_full, c_tv = [], []
    for _ in range(max(sz.repeats, 15)):  # a few ms each: more runs for a steadier median
        dt, _c, dot_def = timed_cpu(gp_default)
        t_def.append(dt)
        dt, ct, dot_full = timed_cpu(gp_full)
        t_full.append(dt)
        c_full.append(ct)
        dt, ct, src = timed_cpu(torchviz)
        t_tv.append(dt)
        c_tv.append(ct)
    d, f, t = med(t_def), med(t_full), med(t_tv)
    cf, ct = med(c_full), med(c_tv)
    tv_nodes = len(re.findall(r"^\s*\d+ \[", src, flags=re.M))
    # The headline is like for like: every node drawn on both sides. The default view draws a
    # handful of folded nodes, so its ratio says little about the DOT writer: a note only.
    res.ratio(f"torchviz make_dot ÷ graphprobe probe+to_dot(budget=None), every node, transformer x{sz.layers}",
              ct / cf, ge=3.0, aim=10.0,
              note=f"like for like, CPU time: graphprobe {secs(cf)} ({count_dot_nodes(dot_full)} nodes), "
                   f"torchviz {secs(ct)} ({tv_nodes} nodes); wall clock: graphprobe {secs(f)}, "
                   f"torchviz {secs(t)} (ratio {t / f:.3g}); medians of {len(t_tv)} interleaved runs"
                   + (f"; {recursion_note}" if recursion_note else ""))
    res.notes.append(f"Not like for like, for reference only: the default view (to_dot(), "
                     f"{count_dot_nodes(dot_def)} nodes drawn of {count_dot_nodes(dot_full)}) takes "
                     f"{secs(d)} wall with the probe, torchviz {secs(t)} for {tv_nodes} nodes "
                     f"(ratio {t / d:.3g}).")


# -- 3. a training step under trace() -------------------------------------------------------
def _step_times(step: Callable[[], None], n: int) -> list[float]:
    """CPU seconds of this thread per step (torch runs on one thread): other processes on the
    shared cores would otherwise decide which side of the ratio looks slower."""
    out = []
    for _ in range(n):
        t0 = time.thread_time()
        step()
        out.append(time.thread_time() - t0)
    return out


def _trace_ratio(step: Callable[[], None], n: int, blocks: int) -> tuple[float, float]:
    """Median step time without and with ``graphprobe.trace()``: ``blocks`` interleaved blocks of
    ``n`` steps each (one trace around each traced block), alternating which goes first."""
    step()
    with graphprobe.trace():
        step()
    plain: list[float] = []
    traced: list[float] = []

    def run_plain() -> None:
        gc.collect()
        plain.extend(_step_times(step, n))

    def run_traced() -> None:
        gc.collect()
        with graphprobe.trace():
            traced.extend(_step_times(step, n))

    for i in range(blocks):
        for f in ((run_traced, run_plain) if i % 2 else (run_plain, run_traced)):
            f()
    return med(plain), med(traced)


def bench_trace(sz: Sizes, res: Results) -> None:
    print(f"\n[training step under graphprobe.trace()]", flush=True)
    model, x = transformer(sz.layers)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()

    p, t = _trace_ratio(step, sz.train_steps, sz.trace_blocks)
    res.ratio(f"step under trace() ÷ plain step, transformer x{sz.layers}", t / p, le=1.3,
              note=f"plain {secs(p)}, traced {secs(t)} (Adam)")

    # The seed's case 1: two nn.Linear(3, 3), summed MSE losses, two Adam optimizers.
    torch.manual_seed(0)
    xs = torch.ones(2, 3) * 0.2
    net1, net2 = nn.Linear(3, 3), nn.Linear(3, 3)
    tgt1, tgt2 = torch.ones(2, 3) * 0.5, torch.ones(2, 3)
    mse = nn.MSELoss()
    opt1 = torch.optim.Adam(net1.parameters(), 0.002)
    opt2 = torch.optim.Adam(net2.parameters(), 0.002)

    def tiny() -> None:
        tmp = net1(xs)
        loss1 = mse(tmp, tgt1)
        loss2 = mse(net2(tmp), tgt2)
        tol_loss = loss2 + loss1
        opt1.zero_grad()
        opt2.zero_grad()
        tol_loss.backward()
        opt1.step()
        opt2.step()

    p, t = _trace_ratio(tiny, sz.tiny_steps, sz.trace_blocks)
    res.ratio("step under trace() ÷ plain step, seed case 1 (2x Linear(3,3))", t / p, le=2.0,
              note=f"plain {p * 1e6:.0f} µs, traced {t * 1e6:.0f} µs")


# -- 4. --keep-running after capture --------------------------------------------------------
KEEP_SCRIPT = '''\
"""A small MLP trained for a few hundred steps; writes the times of steps 2.. to $GP_BENCH_TIMES."""
import os
import time

import torch
from torch import nn

torch.manual_seed(0)
STEPS = int(os.environ.get("GP_BENCH_STEPS", "200"))
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))
opt = torch.optim.Adam(model.parameters(), 1e-3)
x = torch.randn(128, 64)
y = torch.randn(128, 1)
times = []
for step in range(STEPS):
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
    if step:
        times.append(time.perf_counter() - t0)
with open(os.environ["GP_BENCH_TIMES"], "w") as fh:
    fh.write("\\n".join(repr(t) for t in times))
'''


def bench_keep_running(sz: Sizes, res: Results) -> None:
    from graphprobe.cli import main

    print(f"\n[--keep-running: {sz.keep_steps}-step MLP script, in-process]", flush=True)
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "mlp_train.py")
        with open(script, "w") as fh:
            fh.write(KEEP_SCRIPT)
        times_path = os.path.join(d, "times.txt")
        out_json = os.path.join(d, "graph.json")
        os.environ["GP_BENCH_TIMES"] = times_path
        os.environ["GP_BENCH_STEPS"] = str(sz.keep_steps)

        def read() -> list[float]:
            with open(times_path) as fh:
                return [float(v) for v in fh.read().split()]

        def plain() -> list[float]:
            runpy.run_path(script, run_name="__main__")
            return read()

        def under_cli() -> list[float]:
            code = main(["render", script, "--keep-running", "-o", out_json, "-q"])
            if code != 0:
                raise RuntimeError(f"graphprobe render exited {code}")
            return read()

        plain()
        under_cli()  # warm both paths
        p2, c2, p3, c3 = [], [], [], []
        for i in range(sz.keep_repeats):
            # Alternate which goes first, so neither side always runs on a warmer process.
            if i % 2:
                gc.collect()
                b = under_cli()
                gc.collect()
                a = plain()
            else:
                gc.collect()
                a = plain()
                gc.collect()
                b = under_cli()
            p2.append(sum(a))
            c2.append(sum(b))
            p3.append(sum(a[1:]))
            c3.append(sum(b[1:]))
        with open(out_json) as fh:
            n_nodes = len(json.load(fh).get("nodes", []))
    a, b = med(p2), med(c2)
    res.ratio(f"--keep-running ÷ runpy, steps 2..{sz.keep_steps}", b / a, le=1.05,
              note=f"runpy {secs(a)}, render --keep-running {secs(b)} (capture of {n_nodes} nodes ends in step 2)")
    a, b = med(p3), med(c3)
    res.ratio(f"--keep-running ÷ runpy, steps 3..{sz.keep_steps} (after capture)", b / a, le=1.05,
              note=f"runpy {secs(a)}, render --keep-running {secs(b)}")
    for k in ("GP_BENCH_TIMES", "GP_BENCH_STEPS"):
        os.environ.pop(k, None)


# -- 5. render time, in a subprocess with a wall limit --------------------------------------
def render_child(kind: str, size: int, full: bool) -> None:
    """Build one workload, probe it, time ``report.to_svg()``; print JSON lines.

    ``full`` draws every node (``budget=None``); otherwise the renderer's default view.
    """
    if kind == "gru":
        cell, loss = gru_graph(size)
        params: dict[str, Any] = {"cell": cell}
    else:
        model, x = transformer(size)
        loss = model(x).pow(2).mean()
        params = {"model": model}
    rep = graphprobe.probe(loss, params=params)
    opts: dict[str, Any] = {"budget": None} if full else {}
    out: dict[str, Any] = {"nodes": len(rep.model.kind)}
    try:
        out["dot_nodes"] = count_dot_nodes(rep.to_dot(**opts))
    except TypeError as e:  # a graphprobe without the budget option
        out["error"] = f"TypeError: {e}"
        print(json.dumps({"stage": "done", **out}), flush=True)
        os._exit(0)
    print(json.dumps({"stage": "probed", **out}), flush=True)
    t0 = time.perf_counter()
    try:
        svg = rep.to_svg(**opts)
    except Exception as e:  # the engine's own timeout is an OutputError
        out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        out["seconds"] = time.perf_counter() - t0
    else:
        out["seconds"] = time.perf_counter() - t0
        out["svg_nodes"] = len(re.findall(r"<title>n\d+</title>", svg))
        out["svg_bytes"] = len(svg)
        m = re.search(r"(\d+ of \d+ nodes drawn)", svg)
        out["collapsed"] = m.group(1).strip() if m else None
        out["fell_back"] = "fell back" in svg
    print(json.dumps({"stage": "done", **out}), flush=True)
    # Interpreter shutdown would free the deep GRU graph recursively and segfault (see drop_deep).
    sys.stdout.flush()
    os._exit(0)


def _render(kind: str, size: int, full: bool, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--render-child", kind, str(size),
           "full" if full else "default"]
    t0 = time.perf_counter()
    # A session of its own, so that on timeout the layout engine it started dies with it.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        text, stderr = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        text, stderr = proc.communicate()
        rc = None
    lines = [json.loads(l) for l in text.splitlines() if l.startswith("{")]
    info = lines[-1] if lines else {}
    info["wall"] = time.perf_counter() - t0
    info["rc"] = rc
    if rc is None:
        info["error"] = f"subprocess killed at the {timeout:g} s wall limit"
        info.setdefault("seconds", info["wall"])
    elif rc != 0 and "error" not in info:
        info["error"] = f"subprocess exited {rc}: {stderr.strip().splitlines()[-1:]}"
    return info


def bench_render(sz: Sizes, res: Results) -> None:
    from graphprobe.render.engine import find_engine

    try:
        engine = os.path.basename(find_engine()[0])
    except Exception as e:
        engine = f"none ({e})"
    print(f"\n[render: report.to_svg() with {engine}, each in a subprocess, "
          f"wall limit {sz.render_timeout:g} s]", flush=True)
    cases = (("transformer", sz.layers, False, f"transformer x{sz.layers}, default view"),
             ("transformer", sz.layers, True, f"transformer x{sz.layers}, every node (budget=None)"),
             ("gru", sz.gru_steps, False, f"GRU x{sz.gru_steps:,}, default view"),
             ("gru", sz.gru_steps, True, f"GRU x{sz.gru_steps:,}, every node (budget=None)"))
    for kind, size, full, label in cases:
        info = _render(kind, size, full, sz.render_timeout)
        nodes = info.get("nodes", "?")
        if "error" in info:
            err = info["error"]
            status = "TIMED OUT" if ("too long" in err or "wall limit" in err) else "FAILED"
            value = f"{status.lower()} after {secs(info.get('seconds', info['wall']))}"
            note = f"{err}; {nodes} nodes in report, {info.get('dot_nodes', '?')} in the DOT"
        elif full and (info.get("collapsed") or info.get("fell_back")):
            # Asked for every node, got the coarse view: the layout timed out and fell back.
            status = "TIMED OUT"
            value = (f"full layout gave up; fell back to {info['svg_nodes']:,} visible nodes "
                     f"after {secs(info['seconds'])}")
            note = (f"{nodes:,} nodes in report and in the DOT; drawn collapsed ({info['collapsed']}); "
                    f"SVG {info['svg_bytes'] / 1e3:,.0f} kB")
        else:
            status = "info"
            value = f"{secs(info['seconds'])}, {info['svg_nodes']:,} visible nodes"
            note = f"{nodes:,} nodes in report, {info.get('dot_nodes', '?'):,} asked for in the DOT"
            if info.get("collapsed"):
                note += f"; drawn collapsed ({info['collapsed']})"
            note += f"; SVG {info['svg_bytes'] / 1e3:,.0f} kB"
        res.add(f"to_svg() time, {label}", value, "— (finishes; readable)", status, note)


# -- main ------------------------------------------------------------------------------------
def machine_line() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "?"
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "graphprobe"], cwd=os.path.dirname(HERE),
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if dirty:
            commit += " + uncommitted changes in graphprobe/"
    except Exception:
        commit = "?"
    return (f"{cpu}, {os.cpu_count()} cores (torch threads {torch.get_num_threads()}); "
            f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"graphprobe {graphprobe.__version__} @ {commit}; "
            f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")


#: The sections, by the name ``--only`` takes, in the order of a full run.
SECTIONS: dict[str, Callable[[Sizes, Results], None]] = {
    "gru": bench_gru, "dot": bench_transformer_dot, "trace": bench_trace,
    "keep-running": bench_keep_running, "render": bench_render,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and repeats (under a minute)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="results file (default benchmarks/RESULTS.md)")
    ap.add_argument("--profile", action="store_true", help="cProfile probe() on the big graph, top 15")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads(N) first; 0 keeps torch's own choice (default 1: "
                         "see README)")
    ap.add_argument("--only", action="append", choices=sorted(SECTIONS), metavar="SECTION",
                    help=f"run only this section (repeatable: {', '.join(SECTIONS)}); prints, writes no file")
    ap.add_argument("--render-child", nargs=3, metavar=("KIND", "SIZE", "VIEW"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render_child:
        render_child(args.render_child[0], int(args.render_child[1]), args.render_child[2] == "full")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    sz = QUICK if args.quick else FULL
    if args.only:
        res = Results()
        for name in args.only:
            SECTIONS[name](sz, res)
        print("\n" + res.table())
        return 0
    machine = machine_line()
    print(f"graphprobe benchmarks ({'quick' if args.quick else 'full'})\n{machine}", flush=True)
    res = Results()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    bench_gru(sz, res)
    bench_transformer_dot(sz, res)
    bench_trace(sz, res)
    bench_keep_running(sz, res)
    bench_render(sz, res)
    prof = profile_probe(sz) if args.profile else None
    total = time.perf_counter() - t0
    load = f"1-min load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end (other processes share the cores)"
    missed = [r.figure for r in res.rows if r.status == "MISS"]

    table = res.table()
    print("\n" + table)
    print(f"{len(missed)} target(s) missed; total {total:.0f} s; {load}")
    text = [f"# graphprobe benchmark results ({'quick' if args.quick else 'full'} run)", "",
            f"Machine: {machine}", "", f"Load: {load}.", "",
            f"Command: `python benchmarks/run.py{' --quick' if args.quick else ''}"
            f"{' --profile' if args.profile else ''}` ({total:.0f} s). Medians over "
            f"{sz.repeats} repeats ({sz.keep_repeats} for --keep-running); every ratio's two sides "
            "were measured in the same process in this one run. The torchviz and trace() ratios are "
            "taken on the thread's CPU time (torch on one thread), since the 2 cores are shared; "
            "the DOT row gives the wall-clock medians too. See README.md for what each figure means.",
            "", table, f"Targets missed: {len(missed)}" + (": " + "; ".join(missed) if missed else "."), ""]
    for note in res.notes:
        text.append(f"- {note}")
    if prof:
        text += ["", f"## cProfile of `probe()` on the GRU graph ({sz.gru_steps:,} steps)", "", "```",
                 prof, "```"]
    with open(args.out, "w") as fh:
        fh.write("\n".join(text) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
