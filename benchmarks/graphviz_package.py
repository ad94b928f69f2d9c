"""What the graphviz Python package would cost graphprobe where it has its own code: quoting
and piping DOT to the layout engine. The README's Dependencies section quotes this script.

Usage::

    python benchmarks/graphviz_package.py            # about a minute on 2 cores
    python benchmarks/graphviz_package.py --repeats 5

Each pair is measured interleaved in one process (torch and a model loaded, as under
``graphprobe render``), median over repeats. graphviz's pipe runs the ``dot`` on ``PATH``; where
there is none, a link named ``dot`` to graphviz-pure (which takes dot's flags) stands in, so both
sides run the same engine. CI does not run this.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import graphviz
import torch
from graphviz.quoting import escape as gv_escape
from graphviz.quoting import quote as gv_quote

import graphprobe
from graphprobe.render import dot as dot_mod
from graphprobe.render import engine
from graphprobe.render.dot import DotOptions, to_dot

# graphviz's pipe inside a Python child that carries the bound (rlimits are inherited by dot).
_CHILD = ("import sys, graphviz\n"
          "sys.stdout.buffer.write(graphviz.pipe('dot', sys.argv[1], sys.stdin.buffer.read(), "
          "quiet=True))\n")


def _reports() -> tuple[graphprobe.Report, graphprobe.Report]:
    """The seed's case 4 (10 nodes), and a chain of 330 Linear+Tanh blocks (1,982 nodes)."""
    torch.manual_seed(0)
    net1, net2 = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    with graphprobe.trace():
        tmp = torch.from_numpy(net1(torch.ones(2, 3)).detach().numpy() * 0.5)
        small = graphprobe.probe(net2(tmp).sum(), params={"net1": net1, "net2": net2},
                                 names=["loss2"])
    net = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())
                                for _ in range(330)])
    with graphprobe.trace():
        y = torch.ones(2, 4)
        for block in net:
            y = block(y) * 1.01
        big = graphprobe.probe(y.sum(), params=net, names=["loss"])
    return small, big


def _medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Milliseconds per call, median over ``repeats`` rounds that run every function once."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def _quoting(big: graphprobe.Report, repeats: int) -> None:
    seen: list[str] = []
    ours = dot_mod.quote

    def spy(text: str) -> str:
        seen.append(text)
        return ours(text)

    dot_mod.quote = spy
    try:
        reference = to_dot(big, DotOptions(budget=None))
    finally:
        dot_mod.quote = ours

    def theirs(text: str) -> str:
        return gv_quote(gv_escape(text))

    print(f"quoting: the {len(seen)} strings a {len(big.model):,}-node DOT quotes "
          f"({reference.count(chr(10)):,} lines)")
    m = _medians({"ours": lambda: [ours(s) for s in seen],
                  "graphviz": lambda: [theirs(s) for s in seen]}, repeats * 5)
    print(f"  quote():  ours {m['ours']:.2f} ms, graphviz quote(escape()) {m['graphviz']:.2f} ms"
          f"  ({m['graphviz'] / m['ours']:.1f}x)")

    def whole(q: Callable[[str], str]) -> str:
        dot_mod.quote = q
        try:
            return to_dot(big, DotOptions(budget=None))
        finally:
            dot_mod.quote = ours

    m = _medians({"ours": lambda: whole(ours), "graphviz": lambda: whole(theirs)}, repeats)
    same = whole(theirs) == reference
    differ = sum(ours(s) != theirs(s) for s in seen)
    print(f"  to_dot(): ours {m['ours']:.1f} ms, with graphviz's quoting {m['graphviz']:.1f} ms"
          f"  ({m['graphviz'] / m['ours']:.1f}x); same DOT bytes: {same} "
          f"({differ} of {len(seen)} strings differ: bare IDs, raw newlines)")


def _piping(small: graphprobe.Report, big: graphprobe.Report, repeats: int) -> None:
    print(f"piping DOT to {engine.find_engine()[0]} (torch loaded)")
    limit = engine.memory_limit()

    def bounded_child(src: bytes) -> bytes:
        done = subprocess.run([sys.executable, "-c", _CHILD, "svg"], input=src,
                              capture_output=True, timeout=120, start_new_session=True,
                              preexec_fn=engine._limit_child(limit))
        return done.stdout

    def ours(src: str, late: bool) -> Callable[[], bytes]:
        def run() -> bytes:
            old = engine._late_limits
            engine._late_limits = lambda: late and old()  # type: ignore[assignment]
            try:
                return engine.layout(src, "svg")
            finally:
                engine._late_limits = old  # type: ignore[assignment]
        return run

    for label, report, n in (("case 4", small, repeats * 6), ("2,000 nodes", big, repeats)):
        src = to_dot(report, DotOptions(budget=None))
        fns: dict[str, Callable[[], bytes]] = {
            "ours, limit by prlimit after start": ours(src, True),
            "ours, limit by preexec_fn": ours(src, False),
            "graphviz.pipe, no limit, no timeout": lambda: graphviz.pipe(
                "dot", "svg", src.encode(), quiet=True),
            "graphviz.pipe in a bounded Python child": lambda: bounded_child(src.encode()),
        }
        outputs = {k: f() for k, f in fns.items()}
        m = _medians(fns, n)
        same = len(set(outputs.values())) == 1
        print(f"  {label} ({len(report.model):,} nodes; same bytes from all four: {same})")
        for k, v in m.items():
            print(f"    {k:42s} {v:8.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    small, big = _reports()
    _quoting(big, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        if shutil.which("dot") is None:
            pure = engine.find_engine()[0]
            (Path(tmp) / "dot").symlink_to(pure)
            os.environ["PATH"] = tmp + os.pathsep + os.environ.get("PATH", "")
            print(f"(no system dot: {pure} linked as dot for graphviz's pipe)")
        _piping(small, big, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
