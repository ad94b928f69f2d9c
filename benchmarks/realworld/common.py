"""What the two real-code harnesses share: running a script twice and comparing.

Each case runs twice, one after the other, in subprocesses with a timeout:

1. under the oracle (``site/gp_oracle.py``, loaded by ``site/sitecustomize.py``): what
   ``torch.autograd.grad`` reaches from each backward of the first step, and the names a user
   would use for each parameter;
2. as a user runs graphprobe: ``python -m graphprobe render <script> <args> -o out.json``.

Then :func:`compare` matches graphprobe's parameter names to the oracle's parameters and its
losses to the oracle's backward calls (by call site), and says what differs.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SITE = os.path.join(HERE, "site")
STUBS = os.path.join(HERE, "stubs")
# Real packages some examples import, installed here by pip on first use: Pillow < 10
# (fast_neural_style uses Image.ANTIALIAS, gone in Pillow 10) and gymnasium.
DEPS = os.environ.get("GP_REALWORLD_DEPS", os.path.join(os.path.expanduser("~"), ".cache", "graphprobe-realworld"))
DEP_PACKAGES = ["pillow<10", "gymnasium", "cloudpickle", "farama-notifications"]


def ensure_deps(python: str) -> None:
    """Install Pillow and gymnasium (without their dependencies, numpy stays the venv's) into DEPS."""
    marker = os.path.join(DEPS, ".graphprobe-realworld-deps")
    want = " ".join(DEP_PACKAGES)
    if os.path.isfile(marker) and open(marker).read().strip() == want:
        return
    os.makedirs(DEPS, exist_ok=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "--no-deps", "--target", DEPS, *DEP_PACKAGES],
                   check=True, timeout=300)
    with open(marker, "w") as fh:
        fh.write(want + "\n")


@dataclass
class Run:
    """One subprocess: its exit code, how long it took, its output tail, whether it timed out."""

    rc: int | None
    seconds: float
    tail: str
    timed_out: bool = False


def run(cmd: list[str], cwd: str, env: dict[str, str], timeout: float, log: str) -> Run:
    """Run ``cmd`` in its own process group; kill the whole group at ``timeout``."""
    t0 = time.monotonic()
    with open(log, "wb") as out:
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc: int | None = p.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            rc, timed_out = None, True
        finally:
            # Children (data loader workers, torchrun ranks) must not outlive the case.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with open(log, "rb") as fh:
        tail = fh.read()[-3000:].decode("utf-8", "replace")
    return Run(rc, time.monotonic() - t0, tail, timed_out)


def base_env(graphprobe_tree: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GP_ORACLE")}
    env["PYTHONPATH"] = os.pathsep.join([SITE, graphprobe_tree, STUBS, DEPS])
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


# -- names ------------------------------------------------------------------------------------

_BRACKET = re.compile(r"\[['\"]?([^\]'\"]+)['\"]?\]")


def norm(name: str) -> str:
    """``nets[1].module.weight`` and ``nets.1.weight`` are one name (DDP's ``module.`` dropped)."""
    n = _BRACKET.sub(r".\1", name)
    parts = [p for p in n.split(".") if p != "module"]
    return ".".join(parts)


def bad_name(name: str) -> bool:
    """A name no user would recognise as a parameter's."""
    return name.startswith("Parameter") or "param_groups" in name or name.startswith("loss[")


# -- oracle files -------------------------------------------------------------------------------

def load_oracle(prefix: str) -> list[dict[str, Any]]:
    """The oracle's per-process records, the processes that made a backward first."""
    out = []
    for path in sorted(glob.glob(prefix + ".*.json")):
        with open(path) as fh:
            out.append(json.load(fh))
    out.sort(key=lambda d: (not d["calls"], d.get("rank") or "", d["pid"]))
    return out


def losses_of(orc: dict[str, Any]) -> list[dict[str, Any]]:
    """The oracle's calls that are losses: every backward, and grad() calls without create_graph."""
    return [c for c in orc["calls"] if c.get("kind") in ("backward", "autograd.backward")
            or (c.get("kind") == "grad" and not c.get("create_graph"))]


@dataclass
class Comparison:
    """What differs between graphprobe's report and the oracle, by area."""

    problems: list[tuple[str, str]] = field(default_factory=list)  # (area, text)
    n_params: int = 0
    n_losses: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, area: str, text: str) -> None:
        self.problems.append((area, text))


def _site(loc: str | None) -> str:
    if not loc:
        return "?"
    path, _, line = loc.rpartition(":")
    return f"{os.path.basename(path)}:{line}"


def _short(names: list[str], k: int = 3) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def compare(report: dict[str, Any], orc: dict[str, Any]) -> Comparison:
    """Reach sets per backward call site, and names, of ``report`` against the oracle's ``orc``.

    Complexity: O(P·N) for P graphprobe parameters and N oracle names, fine at these sizes.
    """
    cmp = Comparison()
    oparams = {p["id"]: p for p in orc["params"]}
    by_name: dict[str, set[int]] = {}
    for p in orc["params"]:
        for n in p["names"]:
            by_name.setdefault(norm(n), set()).add(p["id"])
    # graphprobe name -> oracle parameter id
    gmap: dict[str, int] = {}
    bad: list[str] = []
    unknown: list[str] = []
    ambiguous: list[str] = []
    for gp in report.get("params", []):
        if gp.get("frozen"):
            continue  # requires_grad=False: the oracle can't differentiate w.r.t. it, and it is listed apart
        name = gp["name"]
        if bad_name(name):
            bad.append(name)
        ids = by_name.get(norm(name), set())
        if len(ids) == 1:
            gmap[name] = next(iter(ids))
            continue
        # Not a name the oracle saw in scope: match by the longest dotted suffix and shape, to
        # still compare reach; the name itself is reported.
        if len(ids) > 1:
            ambiguous.append(name)
            # Still compare reach: the shape may tell which one (forward-forward's layers differ).
            same = [i for i in ids if list(oparams[i]["shape"]) == list(gp.get("shape") or [])]
            if len(same) == 1:
                gmap[name] = same[0]
                continue
        cands = _by_suffix(name, gp.get("shape"), orc["params"])
        if len(cands) == 1:
            gmap[name] = cands[0]
        if not bad_name(name) and not ids:
            unknown.append(name)
    cmp.n_params = len(report.get("params", []))
    if bad:
        cmp.add("names", f"{len(bad)} names a user would not recognise: {_short(bad)}")
    if ambiguous:
        cmp.add("names", f"{len(ambiguous)} names that stand for several parameters in scope: {_short(ambiguous)}")
    if unknown:
        cmp.add("names", f"{len(unknown)} names not found in the script's scope: {_short(unknown)}")
    # Reach per call site: the set of distinct reach sets (a closure called 20 times by LBFGS
    # reaches the same set each time; graphprobe may show it once).
    want: dict[str, set[frozenset[int]]] = {}
    terms: dict[str, dict[str, frozenset[int]]] = {}  # site -> additive term name -> reach
    for c in losses_of(orc):
        for r in c["roots"]:
            if r is not None:
                want.setdefault(c["site"], set()).add(frozenset(r))
        for t in c.get("terms", []):
            terms.setdefault(c["site"], {})[t["name"]] = frozenset(t["reach"])
    got: dict[str, set[frozenset[int]]] = {}
    reaches = report.get("reaches", {})
    losses = report.get("losses", [])
    composite_sites = {_site(x.get("location")) for x in losses if x.get("composite")}
    for loss in losses:
        site = _site(loss.get("location"))
        ids = frozenset(gmap[n] for n in reaches.get(loss["name"], []) if n in gmap)
        if site in composite_sites and not loss.get("composite"):
            # A column for a term of a summed loss (loss1 in loss1 + loss2): only if it is one.
            tw = terms.get(site, {})
            if loss["name"] not in tw:
                cmp.add("names", f"{loss['name']!r} at {site} gets a loss column but is not a term of the backwarded sum")
            elif tw[loss["name"]] != ids:
                cmp.add("reach", f"term {loss['name']!r} at {site}: reach differs from the oracle's")
            continue
        got.setdefault(site, set()).add(ids)
    cmp.n_losses = sum(len(v) for v in want.values())
    for site in sorted(set(want) - set(got)):
        cmp.add("step", f"backward at {site} not captured (the oracle's step has {len(want[site])} reach set(s) there)")
    for site in sorted(set(got) - set(want)):
        cmp.add("step", f"loss at {site} is not a backward of the oracle's step")
    for site in sorted(set(want) & set(got)):
        if want[site] == got[site]:
            continue
        w = set().union(*want[site])
        g = set().union(*got[site])
        missing = sorted({_pname(oparams[i]) for i in w - g})
        extra = sorted({_pname(oparams[i]) for i in g - w})
        if missing or extra:
            txt = f"reach at {site} differs:"
            if missing:
                txt += f" graphprobe misses {len(missing)} ({_short(missing)})"
            if extra:
                txt += f" graphprobe adds {len(extra)} ({_short(extra)})"
            cmp.add("reach", txt)
        else:
            cmp.add("reach", f"reach at {site}: same union, but {len(got[site])} distinct sets against the oracle's {len(want[site])}")
    return cmp


def _pname(p: dict[str, Any]) -> str:
    # The longest name is the most specific (``net.layers[1].weight`` over ``self.weight``).
    return max(p["names"], key=len) if p["names"] else f"<unnamed {tuple(p['shape'])}>"


def _by_suffix(name: str, shape: Any, params: list[dict[str, Any]]) -> list[int]:
    parts = norm(name).split(".")
    best, out = 0, []
    for p in params:
        if shape is not None and list(p["shape"]) != list(shape):
            continue
        for n in p["names"]:
            q = norm(n).split(".")
            k = 0
            while k < min(len(q), len(parts)) and q[-1 - k] == parts[-1 - k]:
                k += 1
            if k > best:
                best, out = k, [p["id"]]
            elif k == best and k and p["id"] not in out:
                out.append(p["id"])
    return out if best >= 2 else []


# -- findings ----------------------------------------------------------------------------------

def errors_of(report: dict[str, Any]) -> list[str]:
    """Every error-severity finding, one short line each."""
    out = []
    for c in report.get("cuts", []):
        if c.get("severity") == "error" and not c.get("ignored"):
            out.append(f"{c['kind']} cut at {_site(c.get('location'))}")
    for d in report.get("detached", []):
        if d.get("severity") == "error":
            out.append(f"{d['kind']} {d['name']}")
    for key in ("freed", "errors"):
        for e in report.get(key, []):
            if e.get("severity") == "error":
                out.append(f"{e.get('kind', key)} {(e.get('message') or '').splitlines()[0][:100] if e.get('message') else ''}".strip())
    # Findings from a newer findings model (issue 10) may come as a list of their own.
    for f in report.get("findings_list", []) or []:
        if f.get("severity") == "error":
            out.append(f.get("kind", "finding"))
    return out


def load_reports(out: str) -> list[dict[str, Any]]:
    """graphprobe's JSON: ``out.json``, or ``out.rank<k>.json`` per rank; then ``out.child<k>.json``
    per child process that trained (mnist_hogwild), after ``out.json``."""
    stem = os.path.splitext(out)[0]
    paths = [out] if os.path.exists(out) else sorted(glob.glob(stem + ".rank*.json"))
    paths += sorted(glob.glob(stem + ".child*.json"))
    reports = []
    for p in paths:
        with open(p) as fh:
            reports.append(json.load(fh))
    return reports


def fresh_dir(path: str) -> str:
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def python() -> str:
    return sys.executable


# -- RESULTS.md ----------------------------------------------------------------------------------

REAL_CODE = "## Real code"


def machine_line() -> str:
    """CPU model (as lscpu names it), cores, Python and torch versions, the date."""
    import datetime
    import platform

    import torch

    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model)
    except (OSError, subprocess.SubprocessError):
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Machine: {model}, {os.cpu_count()} cores; Python {platform.python_version()}, torch "
            f"{torch.__version__}; {now}; load average {os.getloadavg()[0]:.1f} at the end")


def graphprobe_commit(tree: str) -> str:
    try:
        return subprocess.run(["git", "-C", tree, "log", "-1", "--format=%h %s"], capture_output=True, text=True,
                              timeout=10).stdout.strip()[:90] or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def write_results(path: str, key: str, title: str, body: list[str]) -> None:
    """Put ``body`` under ``### title`` in RESULTS.md's "Real code" section, replacing its last version.

    The block sits between ``<!-- realworld:key -->`` markers, so each harness rewrites only its
    own block and leaves the rest of the file (benchmarks/run.py's table) alone.
    """
    start, end = f"<!-- realworld:{key} -->", f"<!-- /realworld:{key} -->"
    block = "\n".join([start, f"### {title}", "", *body, end])
    text = open(path).read() if os.path.exists(path) else ""
    if start in text and end in text:
        a, b = text.index(start), text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    else:
        if REAL_CODE not in text:
            text = text.rstrip("\n") + f"\n\n{REAL_CODE}\n\nThe real-code harnesses of benchmarks/realworld/ " \
                "(see its README.md): graphprobe against a `torch.autograd.grad` oracle on code nobody here wrote.\n"
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    os.replace(tmp, path)
