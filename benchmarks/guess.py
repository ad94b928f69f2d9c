"""What linking rebuilt leaves to saved tensors costs ``probe()`` without a trace (issue 10, item 5).

    python benchmarks/guess.py            # TransformerEncoder x 12 and GRUCell x 3,000
    python benchmarks/guess.py --quick    # smaller

Seed case 4 at scale: a model's output goes through numpy (``× 0.5``) and back as a leaf made to
require grad, feeding a head with a loss of its own. ``probe(loss1, loss2)`` with no trace links
that leaf to the tensor ``MseLossBackward0`` saved in loss1's graph. Printed: probe() with the
guess, probe() with the guess switched off, their ratio, and the guess step alone, medians of
repeats. The guess compares rebuilt leaves only, against saved tensors of the same numel.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from typing import Any, Callable

import torch
from torch import nn

import graphprobe

PROBE = importlib.import_module("graphprobe.probe")  # the module (the package's `probe` is the function)


def _case4(model: nn.Module, x: Any, head: nn.Module, square: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(x)
    if isinstance(out, tuple):
        out = out[0]
    loss1 = nn.functional.mse_loss(out, torch.zeros_like(out))
    arr = out.detach().numpy()
    tmp = torch.from_numpy(arr ** 2 if square else arr * 0.5)  # squared: nothing matches (the worst case)
    tmp.requires_grad_(True)
    loss2 = head(tmp).sum()
    return loss1, loss2


class _Unrolled(nn.Module):
    def __init__(self, steps: int) -> None:
        super().__init__()
        self.cell = nn.GRUCell(8, 8)
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], 8)
        for _ in range(self.steps):
            h = self.cell(x, h)
        return h


def _median(fn: Callable[[], Any], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench(name: str, model: nn.Module, x: torch.Tensor, width: int, repeats: int, square: bool = False) -> None:
    head = nn.Linear(width, 1)
    loss1, loss2 = _case4(model, x, head, square)

    def run() -> Any:
        return PROBE.build_report([loss1, loss2], None, params={"model": model, "head": head},
                                  names=["loss1", "loss2"])

    r = run()
    guessed = [c for c in r.cuts if c["guess"]]
    assert bool(guessed) != square, "a guess where none was expected, or none where one was"
    nodes = len(r.model)
    with_guess = _median(run, repeats)
    orig = PROBE.guess_origins
    captured: dict[str, Any] = {}

    def spy(*a: Any) -> Any:
        captured["args"] = a
        return orig(*a)

    PROBE.guess_origins = lambda *a: []
    try:
        without = _median(run, repeats)
    finally:
        PROBE.guess_origins = spy
    try:
        run()
    finally:
        PROBE.guess_origins = orig
    alone = _median(lambda: orig(*captured["args"]), repeats)
    print(f"{name}: {nodes:,} nodes; probe() {with_guess * 1e3:.1f} ms with the guess, "
          f"{without * 1e3:.1f} ms without (x{with_guess / without:.2f}); the guess alone "
          f"{alone * 1e3:.2f} ms; "
          + (f"linked from {guessed[0]['from']['op']} ({guessed[0]['from']['module']})" if guessed
             else "no match (every saved tensor of that size compared)"), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    layers, steps, repeats = (4, 500, 3) if a.quick else (12, 3000, 5)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True), layers,
                                enable_nested_tensor=False)
    bench(f"TransformerEncoder x {layers}", enc, torch.rand(2, 16, 32), 32, repeats)
    bench(f"GRUCell(8, 8) x {steps:,}", _Unrolled(steps), torch.rand(4, 8), 8, repeats)
    bench(f"GRUCell(8, 8) x {steps:,}, no match", _Unrolled(steps), torch.rand(4, 8), 8, repeats, square=True)
    print(f"graphprobe {graphprobe.__version__}, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
