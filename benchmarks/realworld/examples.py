"""graphprobe on pytorch/examples (commit 77f55b9), against the torch.autograd.grad oracle.

    python benchmarks/realworld/examples.py /tmp/ex            # every example
    python benchmarks/realworld/examples.py /tmp/ex mnist vae  # some of them
    python benchmarks/realworld/examples.py /tmp/ex --graphprobe /work/main --json out.json

For each example it runs the example's own script, unchanged, from a temporary run directory
(stand-in data generated there; stand-in ``torchvision``, ``matplotlib``, ``requests`` and
``six`` first on ``PYTHONPATH``; Pillow and gymnasium real, installed by pip into a cache):
once under the oracle and once as ``python -m graphprobe render <script> <args> -o out.json``.
It prints one line per case, ``PASS`` or ``FAIL`` with the reasons, then ``N/M``.

A case passes when graphprobe captured the oracle's backward call sites, each with the
oracle's reach sets, under names found in the script's scope (never ``Parameter`` or
``param_groups``), and, for the unchanged examples, no error-severity finding (they are textbook
code that trains). An injection case (a one-line change made to a temporary copy of the
example) passes when graphprobe reports an error-severity cut at the injected line and names
that line in its verdict.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

# ---------------------------------------------------------------------------------------------
# stand-in data


def _mnist_parent(run: str, ex: str) -> dict[str, str]:
    return {}  # the stand-in torchvision MNIST generates its data; nothing on disk


def _wikitext(run: str, ex: str) -> dict[str, str]:
    d = os.path.join(run, "data", "wikitext-2")
    os.makedirs(d, exist_ok=True)
    g = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    for split, n in (("train", 600), ("valid", 120), ("test", 120)):
        with open(os.path.join(d, f"{split}.txt"), "w") as fh:
            for _ in range(n):
                fh.write(" " + " ".join(g.choice(words, size=12)) + " \n")
    return {}


def _cora(run: str, ex: str) -> dict[str, str]:
    """A Cora-shaped graph: 1,800 papers, 32 binary features, 7 classes, 5,000 citations."""
    g = np.random.default_rng(0)
    n, f = 1800, 32
    ids = g.choice(10 ** 6, size=n, replace=False) + 1
    classes = ["Case_Based", "Genetic_Algorithms", "Neural_Networks", "Probabilistic_Methods",
               "Reinforcement_Learning", "Rule_Learning", "Theory"]
    tmp = os.path.join(run, "_cora_src", "cora")
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(tmp, "cora.content"), "w") as fh:
        for i in range(n):
            feats = g.integers(0, 2, size=f)
            feats[g.integers(0, f)] = 1  # every paper has a word: no zero row
            fh.write(f"{ids[i]}\t" + "\t".join(map(str, feats)) + f"\t{classes[i % 7]}\n")
    with open(os.path.join(tmp, "cora.cites"), "w") as fh:
        for _ in range(5000):
            a, b = g.choice(n, size=2, replace=False)
            fh.write(f"{ids[a]}\t{ids[b]}\n")
    tgz = os.path.join(run, "_cora_src", "cora.tgz")
    with tarfile.open(tgz, "w:gz") as t:
        t.add(tmp, arcname="cora")
    return {"GP_STANDIN_URLS": json.dumps({"https://linqs-data.soe.ucsc.edu/public/lbc/cora.tgz": tgz})}


def _images(d: str, n: int, size: tuple[int, int], seed: int) -> None:
    from PIL import Image

    os.makedirs(d, exist_ok=True)
    g = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(g.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(
            os.path.join(d, f"{i:05d}.jpg"))


def _bsds(run: str, ex: str) -> dict[str, str]:
    base = os.path.join(run, "dataset", "BSDS300", "images")
    _images(os.path.join(base, "train"), 8, (260, 260), 1)
    _images(os.path.join(base, "test"), 4, (260, 260), 2)
    return {}


def _coco(run: str, ex: str) -> dict[str, str]:
    _images(os.path.join(run, "coco", "train2014"), 4, (96, 96), 3)
    os.makedirs(os.path.join(run, "models"), exist_ok=True)
    return {}


def _sine(run: str, ex: str) -> dict[str, str]:
    """traindata.pt as generate_sine_wave.py writes it (a float64 array of sine waves), smaller:
    8 waves of 100 points instead of 100 of 1,000, so that LBFGS's 20 closure calls take seconds."""
    import torch

    g = np.random.default_rng(2)
    n, length, period = 8, 100, 20
    x = np.arange(length)[None, :] + g.integers(-4 * period, 4 * period, size=(n, 1))
    torch.save(np.sin(x / 1.0 / period).astype("float64"), os.path.join(run, "traindata.pt"))
    return {}


# ---------------------------------------------------------------------------------------------
# the examples


@dataclass
class Injection:
    """A one-line change to a temporary copy of an example that must give an error at its line."""

    name: str
    find: str  # the exact source line, stripped
    replace: str  # what it becomes (indentation kept)


@dataclass
class Example:
    name: str
    dir: str  # in the checkout
    script: str  # in dir
    args: list[str]
    setup: Callable[[str, str], dict[str, str]] | None = None
    torchrun: int = 0  # ranks under torchrun, gloo
    timeout: float = 150.0
    env: dict[str, str] = field(default_factory=dict)
    injections: list[Injection] = field(default_factory=list)


EXAMPLES = [
    Example("reinforce", "reinforcement_learning", "reinforce.py", []),
    Example("actor_critic", "reinforcement_learning", "actor_critic.py", []),
    Example("regression", "regression", "main.py", []),
    Example("time_sequence_prediction", "time_sequence_prediction", "train.py", ["--steps", "1"], setup=_sine,
            # torch >= 2.6 loads weights only by default; the example's traindata.pt is a numpy array.
            env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}),
    Example("dcgan", "dcgan", "main.py", ["--dataset", "fake", "--dry-run", "--batchSize", "4", "--imageSize", "64",
                                           "--ngf", "8", "--ndf", "8", "--workers", "0", "--outf", "out"],
            injections=[
                Injection("dcgan+detach in G loss", "output = netD(fake)", "output = netD(fake.detach())"),
                Injection("dcgan+numpy in G loss", "output = netD(fake)",
                          "output = netD(torch.from_numpy(fake.detach().numpy()))"),
            ]),
    Example("mnist", "mnist", "main.py", ["--epochs", "1", "--dry-run", "--no-accel", "--batch-size", "16",
                                          "--test-batch-size", "64"]),
    Example("mnist_rnn", "mnist_rnn", "main.py", ["--epochs", "1", "--dry-run", "--batch-size", "16",
                                                  "--test-batch-size", "64"]),
    Example("mnist_forward_forward", "mnist_forward_forward", "main.py",
            ["--epochs", "1", "--no_accel", "--train_size", "64", "--test_size", "64"]),
    Example("vae", "vae", "main.py", ["--epochs", "1", "--no-accel", "--batch-size", "16", "--log-interval", "1"],
            injections=[
                Injection("vae+.item() in KLD term", "KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())",
                          "KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()).item()"),
            ]),
    Example("word_language_model", "word_language_model", "main.py",
            ["--epochs", "1", "--dry-run", "--data", "./data/wikitext-2", "--emsize", "16", "--nhid", "16",
             "--batch_size", "4", "--bptt", "8", "--save", "model.pt"], setup=_wikitext),
    Example("siamese_network", "siamese_network", "main.py", ["--epochs", "1", "--dry-run", "--no-accel",
                                                              "--batch-size", "4", "--test-batch-size", "8"]),
    Example("super_resolution", "super_resolution", "main.py",
            ["--upscale_factor", "3", "--batchSize", "2", "--testBatchSize", "4", "--nEpochs", "1", "--lr", "0.001",
             "--threads", "0"],
            setup=_bsds),
    Example("fast_neural_style", "fast_neural_style", "neural_style/neural_style.py",
            ["train", "--dataset", "coco", "--style-image", "{ex}/images/style-images/mosaic.jpg",
             "--save-model-dir", "models", "--epochs", "1", "--batch-size", "2", "--image-size", "64",
             "--style-size", "64", "--log-interval", "1"], setup=_coco, timeout=240),
    Example("gcn", "gcn", "main.py", ["--epochs", "1", "--dry-run", "--no-accel"], setup=_cora),
    Example("gat", "gat", "main.py", ["--epochs", "1", "--dry-run", "--no-accel", "--hidden-dim", "8"], setup=_cora),
    Example("ddp", "distributed/ddp", "example.py", [], torchrun=2, env={"GP_CPU_SHIM": "1"}),
    Example("ddp-tutorial-series", "distributed/ddp-tutorial-series", "multigpu_torchrun.py", ["1", "1", "--batch_size", "8"],
            torchrun=2, env={"GP_CPU_SHIM": "1"}),
    Example("mnist_hogwild", "mnist_hogwild", "main.py", ["--epochs", "1", "--dry-run", "--num-processes", "2",
                                                          "--batch-size", "16", "--test-batch-size", "64"]),
]

# Examples whose unchanged code must give no error-severity finding (issue 10 names four of
# them; the others are textbook training code too, so an error there is a false alarm).
CLEAN = {e.name for e in EXAMPLES}


@dataclass
class Result:
    case: str
    ok: bool
    reasons: list[tuple[str, str]]
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        head = f"{'PASS' if self.ok else 'FAIL'}  {self.case:<28} {self.seconds:6.1f}s"
        if self.reasons:
            head += "  " + "; ".join(f"[{a}] {t}" for a, t in self.reasons)
        return head


def _command(ex: Example, script: str, args: list[str], graphprobe: bool, out: str) -> list[str]:
    py = common.python()
    launch = [py, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ex.torchrun}"] if ex.torchrun else [py]
    if graphprobe:  # torchrun runs `-m graphprobe` in each rank, as `python -m graphprobe` would
        return launch + ["-m", "graphprobe", "render", script, *args, "-o", out, "-q"]
    return launch + [script, *args]


def run_case(ex: Example, checkout: str, work: str, tree: str, inj: Injection | None = None) -> Result:
    """Run one example (or one injection into it) under the oracle and under graphprobe."""
    t0 = time.monotonic()
    case = inj.name if inj else ex.name
    base = common.fresh_dir(os.path.join(work, case.replace("+", "_").replace(" ", "_").replace(".", "")))
    exdir = os.path.join(checkout, ex.dir)
    inj_line = None
    if inj is not None:
        # A patched copy of the example's folder, in a temp dir: never the checkout, never our repo.
        copy = os.path.join(base, "src")
        shutil.copytree(exdir, copy)
        path = os.path.join(copy, ex.script)
        lines = open(path).read().split("\n")
        hits = [i for i, ln in enumerate(lines) if ln.strip() == inj.find]
        if not hits:
            return Result(case, False, [("harness", f"line {inj.find!r} not found")], 0.0)
        # The generator's loss: the last such line (dcgan's D step has netD(fake.detach()) earlier).
        i = hits[-1]
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        lines[i] = indent + inj.replace
        open(path, "w").write("\n".join(lines))
        inj_line = f"{os.path.basename(ex.script)}:{i + 1}"
        exdir = copy
    rundir = common.fresh_dir(os.path.join(base, "run"))
    extra = dict(ex.env)
    if ex.setup is not None:
        extra.update(ex.setup(rundir, exdir) or {})
    script = os.path.join(exdir, ex.script)
    args = [a.replace("{ex}", exdir) for a in ex.args]
    reasons: list[tuple[str, str]] = []
    # 1. the oracle
    oprefix = os.path.join(base, "oracle")
    oenv = common.base_env(tree, {**extra, "GP_ORACLE_OUT": oprefix, "GP_ORACLE_USER": os.path.realpath(exdir)})
    orun = common.run(_command(ex, script, args, False, ""), rundir, oenv, ex.timeout, os.path.join(base, "oracle.log"))
    oracles = [o for o in common.load_oracle(oprefix) if common.losses_of(o)]
    if not oracles:
        why = "timed out" if orun.timed_out else f"exit {orun.rc}"
        return Result(case, False, [("harness", f"the oracle run saw no backward ({why}): {orun.tail.strip().splitlines()[-1:] }")],
                      time.monotonic() - t0)
    # 2. graphprobe, as a user runs it
    rundir2 = common.fresh_dir(os.path.join(base, "run_gp"))
    if ex.setup is not None:
        ex.setup(rundir2, exdir)
    out = os.path.join(base, "out.json")
    genv = common.base_env(tree, extra)
    grun = common.run(_command(ex, script, args, True, out), rundir2, genv, ex.timeout, os.path.join(base, "graphprobe.log"))
    reports = common.load_reports(out)
    detail: dict[str, Any] = {"oracle_exit": orun.rc, "graphprobe_exit": grun.rc, "processes": len(oracles)}
    if grun.timed_out:
        reasons.append(("cli", f"graphprobe render timed out after {ex.timeout:.0f}s"))
    if not reports:
        last = [ln for ln in grun.tail.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        reasons.append(("cli" if grun.rc not in (4,) else "step", f"no report (exit {grun.rc}): {last[0][:200]}"))
        return Result(case, False, reasons, time.monotonic() - t0, detail)
    # Ranks: rank k's report against rank k's oracle; hogwild children: the report against each.
    for k, rep in enumerate(reports):
        orc = oracles[min(k, len(oracles) - 1)]
        cmp = common.compare(rep, orc)
        tag = f"rank {k}: " if len(reports) > 1 else ""
        reasons += [(a, tag + t) for a, t in cmp.problems]
    rep = reports[0]
    errs = common.errors_of(rep)
    detail.update(verdict=rep.get("verdict"), errors=errs, findings=rep.get("findings"))
    if inj is None and ex.name in CLEAN and errs:
        reasons.append(("judgement", f"{len(errs)} error finding(s) on unchanged code: {'; '.join(errs[:3])}"))
    if inj is not None:
        at_line = [c for c in rep.get("cuts", []) if c.get("severity") == "error"
                   and common._site(c.get("location")) == inj_line]
        if not at_line:
            kinds = [(c.get("kind"), common._site(c.get("location")), c.get("severity")) for c in rep.get("cuts", [])]
            reasons.append(("judgement", f"no error cut at the injected line {inj_line}; cuts: {kinds[:4]}"))
        if inj_line not in (rep.get("verdict") or ""):
            reasons.append(("judgement", f"verdict does not name {inj_line}: {rep.get('verdict')!r}"[:300]))
    if grun.rc not in (0, 1):
        reasons.append(("cli", f"graphprobe exit {grun.rc}"))
    return Result(case, not reasons, reasons, time.monotonic() - t0, detail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkout", help="a pytorch/examples checkout (commit 77f55b9)")
    ap.add_argument("only", nargs="*", help="example names (default: all)")
    ap.add_argument("--graphprobe", default=common.REPO, help="the graphprobe tree to test (default: this one)")
    ap.add_argument("--work", default=None, help="where runs go (default: a temp dir, removed after)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--no-injections", action="store_true")
    ap.add_argument("--results", default=None, metavar="RESULTS.md",
                    help="also write the lines into this file's 'Real code' section (benchmarks/RESULTS.md)")
    a = ap.parse_args(argv)
    if not os.path.isfile(os.path.join(a.checkout, "mnist", "main.py")):
        print(f"examples.py: {a.checkout} is not a pytorch/examples checkout", file=sys.stderr)
        return 2
    common.ensure_deps(common.python())
    sys.path.insert(0, common.DEPS)  # Pillow, for the stand-in images written here
    work = a.work or tempfile.mkdtemp(prefix="gp-realworld-")
    chosen = [e for e in EXAMPLES if not a.only or e.name in a.only]
    results: list[Result] = []
    t0 = time.monotonic()
    try:
        for ex in chosen:
            cases: list[Injection | None] = [None] + ([] if a.no_injections else list(ex.injections))
            for inj in cases:
                r = run_case(ex, os.path.abspath(a.checkout), work, os.path.abspath(a.graphprobe), inj)
                results.append(r)
                print(r.line(), flush=True)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    n = sum(r.ok for r in results)
    base = [r for r in results if "+" not in r.case]
    injs = [r for r in results if "+" in r.case]
    total = f"{n}/{len(results)}  (examples {sum(r.ok for r in base)}/{len(base)}, injections " \
            f"{sum(r.ok for r in injs)}/{len(injs)}; {time.monotonic() - t0:.0f}s)"
    if a.json:
        with open(a.json, "w") as fh:
            json.dump([r.__dict__ for r in results], fh, indent=1, default=str)
    print(total)
    if a.results:
        body = [common.machine_line() + ".", "",
                f"graphprobe: {common.graphprobe_commit(a.graphprobe)}; pytorch/examples at 77f55b9; "
                f"`python benchmarks/realworld/examples.py <checkout>`.", "", "```",
                *[r.line() for r in results], total, "```"]
        common.write_results(a.results, "examples", "pytorch/examples", body)
    return 0 if n == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
