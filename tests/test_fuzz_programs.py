"""Random *programs*, generated as Python source, run under ``trace()`` and checked against autograd.

Where ``test_oracle.py`` links modules through fixed helper functions, this fuzzer writes each
program out as a script, so exits and re-entries sit at varying lines and in varying places: at
the top level, inside a helper function the script defines, or inside the ``forward`` of an
``nn.Module`` subclass the script defines (a wrapper holding the downstream ``nn.Linear`` and doing
the exit and re-entry itself); or split between two of these (a helper exits and its caller
re-enters; the top level exits and a wrapper's ``forward`` re-enters). Equal links in helpers
share one helper, so one exit line can serve several modules, live and dead.

A program is 2-5 ``nn.Linear(4, 4)`` modules. Each module after the first reads one earlier output,
or two (summed, or concatenated then sliced; each input linked on its own and then combined, or
combined first and then linked). A link is direct, arithmetic, or a cut: ``.detach()``, ``.data``,
a numpy round trip (numpy functions in between, back through ``torch.from_numpy`` /
``torch.as_tensor`` / ``torch.tensor``), ``.item()`` (scalar arithmetic, back by multiplication or
``torch.tensor``), ``.tolist()`` (back through ``torch.tensor``), or a ``no_grad`` block; a cut is
optionally re-entered with ``requires_grad_(True)``. 1-3 losses sum ``pow(2).mean()`` of subsets of
the outputs.

Oracles:

* reachability: ``torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)``; a
  parameter is reached exactly when its gradient is not None, and ``r.reaches`` must say the same;
* cuts: every cut link into a *live* module (one a probed loss reads, directly or through later
  modules over links of any kind) is reported with its kind at the line of its first exit call,
  and nothing else is reported (compared as sets of ``(kind, line)``); every location is in the
  generated file.

A second generator (at the end of the file) writes programs whose links write into buffers
(``buf[idx] = x``, ``copy_``, ``out=``, ``index_put_``, numpy ``a[...] = x``, ``np.copyto``,
writes under ``no_grad``), checked by the same two oracles.

``GRAPHPROBE_FUZZ=long`` runs thousands of programs; the default ("ci") runs several hundred,
derandomized (about 20 s on two cores). The last test checks that the fuzzer really ran that many
(it skips when the fuzzer was deselected or failed). A failing program is in the assertion
message, and stays on disk under ``TMP_DIR``.
"""
from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from typing import NamedTuple

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import graphprobe

PROFILE = os.environ.get("GRAPHPROBE_FUZZ", "ci")
if PROFILE not in ("ci", "long"):
    PROFILE = "ci"
# Settings objects rather than registered profiles: test_oracle.py registers "ci"/"long" with its
# own sizes, and a profile registered here under the same name would replace its.
PROFILES = {
    "ci": settings(max_examples=800, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]),
    "long": settings(max_examples=5000, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]),
}
MIN_PROGRAMS = {"ci": 750, "long": 4500}
# The default test run checks a quick share of each fuzzer's programs; its `slow` twin (run by
# .ci/run as a second pytest call) checks the full count, on other programs (hypothesis seeds a
# derandomized run by the test's name). GRAPHPROBE_FUZZ=long makes only the full twins long.
QUICK = settings(PROFILES["ci"], max_examples=30)
MIN_QUICK = 28

TMP_DIR = tempfile.mkdtemp(prefix="graphprobe_fuzz_")
_FILE_NO = itertools.count()
CHECKED = {"programs": 0, "failed": 0}  # programs run and fully checked in this process


@atexit.register
def _remove_programs() -> None:
    if not CHECKED["failed"]:  # a failing program stays on disk (its path is in the report)
        shutil.rmtree(TMP_DIR, ignore_errors=True)


KINDS = ["direct", "arith", "detach", "data", "numpy", "item", "tolist", "no_grad"]
CUT_KIND = {"detach": "detach", "data": "data", "numpy": "numpy", "item": "item",
            "tolist": "tolist", "no_grad": "no_grad"}


# -- program description -----------------------------------------------------------------------

class Link(NamedTuple):
    kind: str
    exit: int       # which exit form (each kind has a few)
    mids: tuple     # operations between the exit and the re-entry (numpy / scalar / list)
    back: int       # which re-entry form
    regrad: bool    # requires_grad_(True) on the re-entered tensor
    regrad_form: int
    place: str      # "inline": where the link is; "func": a helper function of the script does it;
    #                 "split": a helper exits, the caller re-enters; "outside" (wrapper modules):
    #                 the exit at the top level, the re-entry in the wrapper's forward


class Mod(NamedTuple):
    host: str       # "top": links at top level; "module": inside an nn.Module subclass's forward
    srcs: tuple     # the earlier outputs it reads (1 or 2)
    combine: str    # "sum" | "cat" (two inputs)
    first: str      # "link" (link each input, then combine) | "combine" (combine, then one link)
    links: tuple    # one Link per input ("link") or one Link ("combine")


class Program(NamedTuple):
    n: int
    mods: tuple     # Mod for modules 1..n-1
    losses: tuple   # tuples of module indices


links_st = st.builds(
    Link,
    kind=st.sampled_from(KINDS),
    exit=st.integers(0, 4),
    mids=st.lists(st.integers(0, 7), max_size=3).map(tuple),
    back=st.integers(0, 4),
    regrad=st.booleans(),
    regrad_form=st.integers(0, 2),
    place=st.sampled_from(["inline", "func", "split", "outside"]),
)


@st.composite
def programs(draw):
    n = draw(st.integers(2, 5))
    mods = []
    for i in range(1, n):
        k = draw(st.integers(1, min(2, i)))
        srcs = tuple(draw(st.lists(st.integers(0, i - 1), min_size=k, max_size=k, unique=True)))
        combine = draw(st.sampled_from(["sum", "cat"]))
        first = draw(st.sampled_from(["link", "combine"])) if k == 2 else "link"
        nlinks = k if first == "link" else 1
        links = tuple(draw(st.lists(links_st, min_size=nlinks, max_size=nlinks)))
        mods.append(Mod(draw(st.sampled_from(["top", "module"])), srcs, combine, first, links))
    losses = draw(st.lists(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True)
                           .map(tuple), min_size=1, max_size=3))
    return Program(n, tuple(mods), tuple(losses))


# -- source generation -------------------------------------------------------------------------
# A body is a list of (text, is_exit) with indentation relative to the body. ``z`` is the input
# expression, ``t`` the variable that must hold the linked tensor at the end, ``x`` a suffix that
# keeps temporaries apart at the top level.

NP_MIDS = [
    "{a} = np.clip({a}, -5.0, 5.0)",
    "{a} = np.concatenate([{a}, {a}], axis=0)[: {a}.shape[0]]",
    "{a} = np.stack([{a}, {a} * 2.0])[0]",
    "{a} = np.asarray({a})",
    "{a} = {a} * 0.5 + 1.0",
    "{a} = np.tanh({a})",
    "{a} = {a}.reshape(-1).reshape(2, 4)",
    "{a} = np.maximum({a}, 0.0)",
]
NP_EXITS = [
    [("{a} = {z}.detach().numpy()", True)],
    [("{a} = {z}.detach().cpu().numpy()", True)],
    [("{a} = {z}.data.numpy()", True)],
    [("{d} = {z}.detach()", True), ("{a} = {d}.numpy()", False)],
    [("{a} = {z}.data.cpu().numpy()", True)],
]
NP_BACKS = [
    "{t} = torch.from_numpy({a})",
    "{t} = torch.as_tensor({a})",
    "{t} = torch.tensor({a})",
    "{t} = torch.as_tensor(np.asarray({a}))",
    "{t} = torch.from_numpy(np.ascontiguousarray({a}))",
]
ITEM_EXITS = [
    "{s} = {z}.mean().item()",
    "{s} = {z}.sum().item()",
    "{s} = {z}[0, 1].item()",
    "{s} = {z}.detach().mean().item()",
    "{s} = {z}.data.max().item()",
]
ITEM_MIDS = ["{s} = {s} * 0.5 + 1.0", "{s} = 2.0 * {s} - 1.0", "{s} = -{s}", "{s} = {s} / 3.0",
             "{s} = abs({s}) + 0.1"]
ITEM_BACKS = [
    "{t} = torch.ones(2, 4) * {s}",
    "{t} = torch.tensor({s}) * torch.ones(2, 4)",
    "{t} = torch.full((2, 4), 1.0) * {s}",
    "{t} = torch.tensor([[{s}] * 4] * 2)",
    "{t} = {z} * {s}",  # the scalar meets a tensor that requires grad
]
TOLIST_EXITS = ["{r} = {z}.tolist()", "{r} = {z}.detach().tolist()", "{r} = {z}.data.tolist()"]
TOLIST_MIDS = ["{r} = [[v * 0.5 + 1.0 for v in row] for row in {r}]", "{r} = [list(row) for row in {r}]",
               "{r} = [row[:] for row in {r}]"]
TOLIST_BACKS = ["{t} = torch.tensor({r})", "{t} = torch.as_tensor({r})",
                "{t} = torch.tensor({r}, dtype=torch.float32)"]
REGRAD = ["{t} = {t}.requires_grad_(True)", "{t}.requires_grad_()", "{t} = {t}.requires_grad_()"]


def decorated(link: Link) -> bool:
    """A no_grad link in a helper function may be an ``@torch.no_grad()`` function."""
    return link.kind == "no_grad" and link.place in ("func", "split") and link.exit % 5 == 3


def link_parts(link: Link, z: str, t: str, x: str, z_in_post: bool = True
               ) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]], str]:
    """``(pre, post, carried)``: the exit and what follows it up to the value ``carried`` (a
    variable: the array, the scalar, the list or the tensor), then the re-entry and the optional
    ``requires_grad_``. A split link runs ``pre`` in one place and ``post`` in another."""
    names = dict(z=z, t=t, a=f"a{x}", d=f"d{x}", s=f"s{x}", r=f"rows{x}")

    def f(s: str) -> str:
        return s.format(**names)

    k, e = link.kind, link.exit
    pre: list[tuple[str, bool]]
    post: list[tuple[str, bool]] = []
    carried = t
    regrad_ok = k in CUT_KIND
    if k == "direct":
        pre = [(f("{t} = {z}"), False)]
    elif k == "arith":
        pre = [(f(["{t} = {z} * 0.5 + 1.0", "{t} = torch.tanh({z}) - {z} * 0.25",
                   "{t} = torch.relu({z}) + {z}"][e % 3]), False)]
    elif k == "detach":
        pre = [[(f("{t} = {z}.detach()"), True)],
               [(f("{t} = {z}.detach() * 2.0"), True)],
               [(f("{t} = {z}.detach().clone()"), True)],
               [(f("{t} = {z}.detach()"), True), (f("{t} = {t} + 1.0"), False)],
               [(f("{t} = torch.sigmoid({z}.detach())"), True)]][e % 5]
    elif k == "data":
        pre = [[(f("{t} = {z}.data"), True)],
               [(f("{t} = {z}.data * 0.5 + 1.0"), True)],
               [(f("{t} = {z}.data.clone()"), True)],
               [(f("{d} = {z}.data"), True), (f("{t} = {d} - 1.0"), False)],
               [(f("{t} = torch.exp({z}.data) * 0.1"), True)]][e % 5]
    elif k == "numpy":
        pre = [(f(s), ex) for s, ex in NP_EXITS[e % len(NP_EXITS)]]
        pre += [(f(NP_MIDS[m % len(NP_MIDS)]), False) for m in link.mids]
        post = [(f(NP_BACKS[link.back % len(NP_BACKS)]), False)]
        carried = names["a"]
    elif k == "item":
        pre = [(f(ITEM_EXITS[e % len(ITEM_EXITS)]), True)]
        pre += [(f(ITEM_MIDS[m % len(ITEM_MIDS)]), False) for m in link.mids]
        back = link.back % len(ITEM_BACKS)
        if back == len(ITEM_BACKS) - 1 and not z_in_post:
            back = 0
        post = [(f(ITEM_BACKS[back]), False)]
        carried = names["s"]
        regrad_ok = back != len(ITEM_BACKS) - 1  # z * s requires grad: not a leaf
    elif k == "tolist":
        pre = [(f(TOLIST_EXITS[e % len(TOLIST_EXITS)]), True)]
        pre += [(f(TOLIST_MIDS[m % len(TOLIST_MIDS)]), False) for m in link.mids]
        post = [(f(TOLIST_BACKS[link.back % len(TOLIST_BACKS)]), False)]
        carried = names["r"]
    elif k == "no_grad":
        if decorated(link):  # the helper is decorated; its body runs under no_grad
            pre = [(f("{t} = {z} * 2.0 - 1.0"), True)]
        else:
            head = "with torch.set_grad_enabled(False):" if e % 5 == 4 else "with torch.no_grad():"
            inner = [[(f("{t} = {z} * 0.5 + 1.0"), True)],
                     [(f("{t} = torch.tanh({z})"), True), (f("{t} = {t} * 2.0"), False)],
                     [(f("{t} = {z}.clone()"), True)],
                     [(f("{t} = {z} + 0.0"), True)],
                     [(f("{t} = {z} - 1.0"), True)]][e % 5]
            pre = [(head, False)] + [("    " + s, ex) for s, ex in inner]
    else:  # pragma: no cover
        raise AssertionError(k)
    if link.regrad and regrad_ok:
        post.append((f(REGRAD[link.regrad_form % len(REGRAD)]), False))
    return pre, post, carried


class Source:
    """The script being written: helper functions, wrapper classes, then the main body.

    Lines carry an optional marker; :meth:`render` returns the text and each marker's line.
    """

    def __init__(self) -> None:
        self.helpers: list[tuple[str, str | None]] = []
        self.classes: list[tuple[str, str | None]] = []
        self.main: list[tuple[str, str | None]] = []
        self.helper_of: dict[tuple, tuple[str, str | None]] = {}  # helper text -> (name, marker)
        self._marks = itertools.count()

    def mark(self) -> str:
        return f"exit{next(self._marks)}"

    def helper(self, link: Link, split: bool) -> tuple[str, str | None]:
        """The helper function for ``link``: the whole link, or (``split``) up to its exit and
        what follows, returning the carried value. Links that render alike share one helper, so
        one exit line can serve several modules."""
        pre, post, carried = link_parts(link, "z", "t", "")
        body = pre if split else pre + post
        ret = carried if split else "t"
        key = (tuple(body), ret, decorated(link))
        if key in self.helper_of:
            return self.helper_of[key]
        name = f"link_{len(self.helper_of)}"
        mark = self.mark() if link.kind in CUT_KIND else None
        lines: list[tuple[str, str | None]] = [("", None)]
        if decorated(link):
            lines.append(("@torch.no_grad()", None))
        lines.append((f"def {name}(z):", None))
        lines += [("    " + s, mark if ex else None) for s, ex in body]
        lines.append((f"    return {ret}", None))
        self.helpers += lines
        self.helper_of[key] = (name, mark)
        return name, mark

    def emit_link(self, out: list, indent: str, link: Link, z: str, t: str, x: str) -> str | None:
        """Write ``t = link(z)`` into ``out``; the marker of its exit line (None: no cut)."""
        if link.place in ("func", "split"):
            split = link.place == "split"
            name, mark = self.helper(link, split)
            if split:
                _, post, carried = link_parts(link, z, t, x)
                out.append((f"{indent}{carried} = {name}({z})", None))
                out += [(indent + s, None) for s, _ in post]
            else:
                out.append((f"{indent}{t} = {name}({z})", None))
            return mark
        pre, post, _ = link_parts(link, z, t, x)
        mark = self.mark() if link.kind in CUT_KIND else None
        out += [(indent + s, mark if ex else None) for s, ex in pre + post]
        return mark

    def emit_outside(self, link: Link, z: str, t: str, x: str) -> tuple[str, str | None, list]:
        """The exit of ``link`` at the top level, its re-entry left for a wrapper's ``forward``:
        (the carried variable, the exit marker, the lines for the forward)."""
        pre, post, carried = link_parts(link, z, t, x, z_in_post=False)
        mark = self.mark() if link.kind in CUT_KIND else None
        self.main += [(s, mark if ex else None) for s, ex in pre]
        return carried, mark, post

    def render(self, head: list[str]) -> tuple[str, dict[str, int]]:
        lines = [(h, None) for h in head] + self.helpers + self.classes + [("", None)] + self.main
        where = {m: i + 1 for i, (_, m) in enumerate(lines) if m is not None}
        return "\n".join(s for s, _ in lines) + "\n", where


def combine_expr(how: str, a: str, b: str) -> str:
    return f"{a} + {b}" if how == "sum" else f"torch.cat([{a}, {b}], dim=1)[:, :4]"


def generate(prog: Program) -> tuple[str, list[tuple[int, str, int]]]:
    """The script for ``prog``, and each cut link as (downstream module, kind, exit line)."""
    src = Source()
    cuts: list[tuple[int, str, str]] = []

    def note(i: int, link: Link, mark: str | None) -> None:
        if mark is not None:
            cuts.append((i, CUT_KIND[link.kind], mark))

    src.main += [("torch.manual_seed(0)", None), ("m0 = nn.Linear(4, 4)", None)]
    for i, mod in enumerate(prog.mods, start=1):
        src.main.append((f"m{i} = Wrap{i}()" if mod.host == "module" else f"m{i} = nn.Linear(4, 4)", None))
    src.main += [("x = torch.ones(2, 4) * 0.3", None), ("h0 = m0(x)", None)]
    for i, mod in enumerate(prog.mods, start=1):
        hs = [f"h{j}" for j in mod.srcs]
        if mod.host == "top":
            out = src.main
            if mod.first == "combine":
                out.append((f"u{i} = {combine_expr(mod.combine, hs[0], hs[1])}", None))
                note(i, mod.links[0], src.emit_link(out, "", mod.links[0], f"u{i}", f"t{i}_0", f"{i}_0"))
                final = f"t{i}_0"
            else:
                ts = [f"t{i}_{e}" for e in range(len(mod.links))]
                for e, (h, link) in enumerate(zip(hs, mod.links)):
                    note(i, link, src.emit_link(out, "", link, h, ts[e], f"{i}_{e}"))
                final = ts[0]
                if len(ts) == 2:
                    out.append((f"u{i} = {combine_expr(mod.combine, ts[0], ts[1])}", None))
                    final = f"u{i}"
            out.append((f"h{i} = m{i}({final})", None))
            continue
        # A wrapper module: the links run in its forward, or (``outside``) exit at the top level
        # and come back in the forward.
        ind = "        "
        body: list = []
        params: list[str] = []
        args: list[str] = []
        if mod.first == "combine":
            link = mod.links[0]
            if link.place == "outside":
                src.main.append((f"u{i} = {combine_expr(mod.combine, hs[0], hs[1])}", None))
                carried, mark, post = src.emit_outside(link, f"u{i}", f"t{i}_0", f"{i}_0")
                note(i, link, mark)
                params, args = [carried], [carried]
                body += [(ind + s, None) for s, _ in post]
                final = f"t{i}_0"
            else:
                params, args = ["z0", "z1"], hs
                body.append((f"{ind}u = {combine_expr(mod.combine, 'z0', 'z1')}", None))
                note(i, link, src.emit_link(body, ind, link, "u", "t0", f"{i}_0"))
                final = "t0"
        else:
            ts = []
            for e, (h, link) in enumerate(zip(hs, mod.links)):
                if link.place == "outside":
                    carried, mark, post = src.emit_outside(link, h, f"t{i}_{e}", f"{i}_{e}")
                    note(i, link, mark)
                    params.append(carried)
                    args.append(carried)
                    body += [(ind + s, None) for s, _ in post]
                    ts.append(f"t{i}_{e}")
                else:
                    params.append(f"z{e}")
                    args.append(h)
                    note(i, link, src.emit_link(body, ind, link, f"z{e}", f"t{e}", f"{i}_{e}"))
                    ts.append(f"t{e}")
            final = ts[0]
            if len(ts) == 2:
                body.append((f"{ind}u = {combine_expr(mod.combine, ts[0], ts[1])}", None))
                final = "u"
        src.classes += [("", None), (f"class Wrap{i}(nn.Module):", None),
                        ("    def __init__(self):", None), ("        super().__init__()", None),
                        ("        self.lin = nn.Linear(4, 4)", None), ("", None),
                        (f"    def forward(self, {', '.join(params)}):", None)]
        src.classes += body + [(f"{ind}return self.lin({final})", None)]
        src.main.append((f"h{i} = m{i}({', '.join(args)})", None))
    for k, terms in enumerate(prog.losses):
        src.main.append((f"L{k} = " + " + ".join(f"h{j}.pow(2).mean()" for j in terms), None))
    text, where = src.render(["import numpy as np", "import torch", "from torch import nn"])
    return text, [(i, kind, where[m]) for i, kind, m in cuts]


def live_modules(prog: Program) -> set[int]:
    """Modules a loss reads, directly or through later modules, over links of any kind."""
    live = {j for terms in prog.losses for j in terms}
    for i in range(prog.n - 1, 0, -1):  # sources come before their readers
        if i in live:
            live.update(prog.mods[i - 1].srcs)
    return live


# -- the property ------------------------------------------------------------------------------

def run_program(prog: Program) -> tuple[str, str, list[tuple[int, str, int]], dict, list, list[str], object]:
    text, cuts = generate(prog)
    path = os.path.join(TMP_DIR, f"prog_{next(_FILE_NO)}.py")
    with open(path, "w") as fh:
        fh.write(text)
    ns: dict = {"__name__": "graphprobe_fuzz_program", "__file__": path}
    code = compile(text, path, "exec")
    with graphprobe.trace():
        exec(code, ns)
        params = {f"m{i}": ns[f"m{i}"] for i in range(prog.n)}
        names = [f"L{k}" for k in range(len(prog.losses))]
        losses = [ns[name] for name in names]
        r = graphprobe.probe(*losses, params=params, names=names)
    return path, text, cuts, params, losses, names, r


def _plain(kind: str) -> Link:
    return Link(kind, 0, (), 0, False, 0, "inline")


# Two exits whose data meet in one op before they re-enter (two detached outputs summed) are two
# cuts. graphprobe 0.1.0 folds them into one record (Provenance.merge keeps one operand's location
# and chain and the most specific kind of all), so one cut goes missing and, when the kinds
# differ, the record is an invented (kind, line) pair: ("numpy", the line of the .detach()).
TWO_EXITS_MEET = Program(3, (Mod("top", (0,), "sum", "link", (_plain("direct"),)),
                             Mod("top", (0, 1), "sum", "link", (_plain("detach"), _plain("detach")))),
                         ((2,),))
NUMPY_MEETS_DETACH = Program(3, (Mod("top", (0,), "sum", "link", (_plain("direct"),)),
                                 Mod("top", (0, 1), "sum", "link", (_plain("numpy"), _plain("detach")))),
                             ((2,),))


def _counted(prog: Program, counter: dict[str, int]) -> None:
    try:
        check_program(prog)
    except BaseException:
        counter["failed"] += 1
        raise
    counter["programs"] += 1


@QUICK
@given(programs())
@example(TWO_EXITS_MEET)
@example(NUMPY_MEETS_DETACH)
def test_generated_programs_match_autograd(prog):
    _counted(prog, CHECKED)


CHECKED_FULL = {"programs": 0, "failed": 0}


@pytest.mark.slow
@PROFILES[PROFILE]
@given(programs())
def test_generated_programs_match_autograd_full(prog):
    _counted(prog, CHECKED_FULL)


def check_program(prog: Program) -> None:
    path, text, cuts, params, losses, names, r = run_program(prog)
    why = f"\n--- {path} ---\n{text}"

    all_params = [(f"{mn}.{pn}", p) for mn, m in params.items() for pn, p in m.named_parameters()]
    for name, loss in zip(names, losses):
        grads = torch.autograd.grad(loss, [p for _, p in all_params], allow_unused=True, retain_graph=True)
        oracle = {pn for (pn, _), g in zip(all_params, grads) if g is not None}
        assert set(r.reaches[name]) == oracle, f"reaches[{name}] = {r.reaches[name]}, autograd: {sorted(oracle)}{why}"

    live = live_modules(prog)
    expected = {(kind, line) for i, kind, line in cuts if i in live}
    reported = set()
    for c in r.cuts:
        # A no_grad cut's location is its `with` line; the op inside it is exit_location.
        file, _, line = (c.get("exit_location") or c["location"]).rpartition(":")
        assert file == path, f"cut located outside the program: {c['location']}{why}"
        reported.add((c["kind"], int(line)))
    assert reported == expected, (
        f"missing {sorted(expected - reported)}, invented {sorted(reported - expected)}{why}")


def _ran_enough(request: pytest.FixtureRequest, name: str, counter: dict[str, int], least: int) -> None:
    if not any(item.name == name for item in request.session.items):
        pytest.skip(f"{name} was not selected in this run")
    if counter["failed"]:
        pytest.skip("the program fuzzer failed (its report has the program); the count means nothing")
    assert counter["programs"] >= least, counter


def test_generated_programs_ran_enough(request):
    """The quick fuzzer really checked the programs it generated (the full one runs with -m slow)."""
    _ran_enough(request, "test_generated_programs_match_autograd", CHECKED, MIN_QUICK)


@pytest.mark.slow
def test_generated_programs_full_ran_enough(request):
    """The full fuzzer really checked several hundred programs (thousands with GRAPHPROBE_FUZZ=long)."""
    _ran_enough(request, "test_generated_programs_match_autograd_full", CHECKED_FULL, MIN_PROGRAMS[PROFILE])


# -- step shapes: whole training steps, run by the runner ---------------------------------------
# A second, self-contained fuzzer: random *training steps* (how the losses of one step are
# backwarded and how the optimizers step), written as scripts, run by graphprobe's runner as
# ``graphprobe render`` runs them, and checked against an oracle the script itself records in a
# plain run: ``torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)`` at each
# backward of its first step. Parameters are compared by shape (each net has its own width), so
# names play no part. The step is one round of the optimizers: the loop's body is one round.

STEP_SHAPES = ["sum", "loop", "oneline", "accum", "closure", "ensemble"]
STEP_OPTS = ["per_net", "shared", "none"]
STEP_EXAMPLES = {"ci": 30, "long": 600}


class StepProgram(NamedTuple):
    nets: int           # 1-3 nets, net k is nn.Linear(3, 4 + k)
    shape: str          # how the step's losses are backwarded (STEP_SHAPES)
    opts: str           # one optimizer per net, one shared, or none (manual p.data update + zero_grad)
    losses: tuple       # per loss: ((net, cut), ...): which nets it reads, each maybe through .detach()
    micro: int          # micro-batches per step ("accum")
    lbfgs: bool         # "closure": LBFGS (re-evaluates the closure) rather than SGD


@st.composite
def step_programs(draw):
    nets = draw(st.integers(1, 3))
    shape = draw(st.sampled_from(STEP_SHAPES))
    opts = draw(st.sampled_from(STEP_OPTS if shape not in ("closure", "ensemble") else STEP_OPTS[:2]))
    if shape == "ensemble":
        opts = "per_net"
    term = st.tuples(st.integers(0, nets - 1), st.booleans())
    n_losses = nets if shape == "ensemble" else draw(st.integers(1, 3) if shape != "oneline" else st.just(2))
    losses = []
    for k in range(n_losses):
        if shape == "ensemble":  # net k's loss reads net k (and maybe a detached other net)
            extra = draw(st.lists(term, max_size=1))
            losses.append(((k, False), *[(j, True) for j, _ in extra if j != k]))
        else:
            losses.append(tuple(draw(st.lists(term, min_size=1, max_size=3, unique_by=lambda t: t[0]))))
    return StepProgram(nets, shape, opts, tuple(losses), draw(st.integers(2, 3)), draw(st.booleans()))


def step_source(prog: StepProgram) -> str:
    """The training script of ``prog``: 3 iterations of one optimizer round each."""
    L = [
        "import json, os", "import torch", "from torch import nn", "torch.manual_seed(0)",
        "_OR = os.environ.get('GP_ORACLE')", "_rec = []",
        "def O(_loss, _first):",
        "    if _OR and _first:",
        "        _g = torch.autograd.grad(_loss, _ps, allow_unused=True, retain_graph=True)",
        "        _rec.append(sorted(list(p.shape) for p, g in zip(_ps, _g) if g is not None))",
        "        json.dump(_rec, open(_OR, 'w'))",
        f"nets = [nn.Linear(3, 4 + k) for k in range({prog.nets})]",
        "_ps = [p for n in nets for p in n.parameters()]",
    ]
    opt_cls = "torch.optim.LBFGS" if prog.shape == "closure" and prog.lbfgs else "torch.optim.SGD"
    extra = ", max_iter=2" if opt_cls.endswith("LBFGS") else ""
    if prog.opts == "per_net":
        L.append(f"opts = [{opt_cls}(n.parameters(), lr=0.01{extra}) for n in nets]")
    elif prog.opts == "shared":
        L.append(f"opts = [{opt_cls}(_ps, lr=0.01{extra})]")

    def loss_expr(terms: tuple, x: str) -> str:
        return " + ".join(f"nets[{j}]({x}){'.detach()' if cut else ''}.pow(2).mean()" for j, cut in terms) \
            + (" + 0 * _anchor" if all(cut for _, cut in terms) else "")

    def zero(ind: str) -> list[str]:
        if prog.opts == "none":
            return [f"{ind}for _n in nets:", f"{ind}    _n.zero_grad()"]
        return [f"{ind}for _o in opts:", f"{ind}    _o.zero_grad()"]

    def update(ind: str) -> list[str]:
        if prog.opts == "none":
            return [f"{ind}for _p in _ps:", f"{ind}    if _p.grad is not None:",
                    f"{ind}        _p.data.add_(-0.01 * _p.grad)"]
        return [f"{ind}for _o in opts:", f"{ind}    _o.step()"]

    # A loss that reads only detached nets still needs a graph: a leaf of its own (no parameter).
    L += ["_anchor = torch.zeros((), requires_grad=True)", "for it in range(3):", "    _x = torch.randn(2, 3)"]
    ls = [loss_expr(t, "_x") for t in prog.losses]
    if prog.shape == "sum":
        L += zero("    ") + [f"    _loss = {' + '.join('(' + e + ')' for e in ls)}", "    O(_loss, it == 0)",
                              "    _loss.backward()"] + update("    ")
    elif prog.shape == "loop":
        L += zero("    ") + [f"    _losses = [{', '.join(ls)}]", "    for _l in _losses:", "        O(_l, it == 0)",
                              "        _l.backward(retain_graph=True)"] + update("    ")
    elif prog.shape == "oneline":
        L += zero("    ") + [f"    _a, _b = {ls[0]}, {ls[1]}", "    O(_a, it == 0); O(_b, it == 0)",
                              "    _a.backward(); _b.backward()"] + update("    ")
    elif prog.shape == "accum":
        L += zero("    ") + [f"    for _m in range({prog.micro}):", "        _x = torch.randn(2, 3)",
                              f"        _loss = {' + '.join('(' + e + ')' for e in ls)}",
                              "        O(_loss, it == 0)", "        _loss.backward()"] + update("    ")
    elif prog.shape == "closure":
        L += ["    for _o in opts:", "        _seen = [0]", "        def _closure():", "            _o.zero_grad()",
              f"            _loss = {' + '.join('(' + e + ')' for e in ls)}",
              "            O(_loss, it == 0 and _seen[0] == 0)", "            _seen[0] += 1",
              "            _loss.backward()", "            return _loss", "        _o.step(_closure)"]
    else:  # ensemble
        L += ["    for _k, (_net, _o) in enumerate(zip(nets, opts)):", "        _o.zero_grad()",
              f"        _loss = [{', '.join(ls)}][_k]", "        O(_loss, it == 0)", "        _loss.backward()",
              "        _o.step()"]
    return "\n".join(L) + "\n"


def _step_reach(rep) -> list:
    by_loss: dict[str, list] = {l["name"]: [] for l in rep.losses}
    for p in rep.params:
        for l in p["reached_by"]:
            by_loss[l].append(p["shape"])
    return sorted(sorted(v) for v in by_loss.values())


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(step_programs())
def test_generated_step_shapes_capture_the_whole_step(prog):
    check_step_program(prog)


@pytest.mark.slow
@settings(max_examples=STEP_EXAMPLES[PROFILE], deadline=None, derandomize=PROFILE == "ci", database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(step_programs())
def test_generated_step_shapes_capture_the_whole_step_full(prog):
    check_step_program(prog)


def check_step_program(prog: StepProgram) -> None:
    import json
    import runpy

    from graphprobe.run.options import RunOptions
    from graphprobe.run.script import run_script

    text = step_source(prog)
    path = os.path.join(TMP_DIR, f"step_{next(_FILE_NO)}.py")
    with open(path, "w") as fh:
        fh.write(text)
    why = f"\n--- {path} ({prog}) ---\n{text}"
    oracle_path = path + ".oracle.json"
    os.environ["GP_ORACLE"] = oracle_path
    try:
        runpy.run_path(path, run_name="__main__")
    finally:
        del os.environ["GP_ORACLE"]
    with open(oracle_path) as fh:
        want = sorted(json.load(fh))
    rep = run_script(RunOptions(path)).report
    assert len(rep.losses) == len(want), f"{[l['name'] for l in rep.losses]} vs {len(want)} backwards{why}"
    assert _step_reach(rep) == want, f"{rep.reaches} vs {want}{why}"


# -- models and optimizers held on objects ------------------------------------------------------
# A second family of programs, about names: 2-4 ``nn.Linear(4, 4)`` modules chained (directly or
# through ``.detach()``), each held in one place a training script keeps models: an attribute of
# a Trainer object (``self.m0``), a list or a dict on it (``self.nets[1]``, ``self.nets_d["k2"]``),
# a global list (``NETS[0]``), a closure stored on it (``mod3`` inside ``self.fns[0]``), or the
# argument of the method (``extra``). Their optimizers sit on the Trainer (``self.opt0``,
# ``self.opts["o1"]``, ``self.opt_list[0]``), in a global list (``OPTS[0]``), or nowhere a name
# reaches (only a bound ``step`` is kept: the garbage collector or the recorder finds it and it
# is named by its class). The Trainer's method runs the forward and calls probe(), itself or
# from a nested function. Oracles: every parameter has the name that path gives, the
# optimizers holding it are listed by theirs, and ``reaches`` equals torch.autograd.grad's.

HOLDERS = ["attr", "list", "dict", "global", "closure", "arg"]
OPT_HOLDERS = ["attr", "dict", "list", "global", "hidden"]
OPT_CLASSES = ["SGD", "Adam", "RMSprop", "Adagrad"]  # one class per optimizer: hidden ones are told apart


class HeldProgram(NamedTuple):
    holders: tuple      # per module, one of HOLDERS ("arg" at most once)
    detach: tuple       # per module after the first: its input is the previous output detached
    opt_of: tuple       # per module: the optimizer index holding it, or None
    opt_holders: tuple  # per optimizer: one of OPT_HOLDERS
    extra_losses: tuple  # module outputs added to the loss besides the last one
    nested: bool        # probe() from a function nested in the method
    traced: bool        # the whole program runs inside graphprobe.trace()


@st.composite
def held_programs(draw):
    n = draw(st.integers(2, 4))
    holders = list(draw(st.lists(st.sampled_from(HOLDERS), min_size=n, max_size=n)))
    for i in [i for i, h in enumerate(holders) if h == "arg"][1:]:
        holders[i] = "attr"
    n_opts = draw(st.integers(0, min(3, n)))
    opt_of = tuple(draw(st.lists(st.one_of(st.none(), st.integers(0, n_opts - 1)) if n_opts else st.none(),
                                 min_size=n, max_size=n)))
    used = sorted({o for o in opt_of if o is not None})
    remap = {o: k for k, o in enumerate(used)}  # optimizers numbered in order, none empty
    opt_of = tuple(remap[o] if o is not None else None for o in opt_of)
    opt_holders = tuple(draw(st.lists(st.sampled_from(OPT_HOLDERS), min_size=len(used), max_size=len(used))))
    return HeldProgram(tuple(holders), tuple(draw(st.lists(st.booleans(), min_size=n - 1, max_size=n - 1))),
                       opt_of, opt_holders,
                       tuple(draw(st.lists(st.integers(0, n - 2), max_size=2, unique=True))) if n > 1 else (),
                       draw(st.booleans()), draw(st.booleans()))


def generate_held(prog: HeldProgram) -> tuple[str, list[str], list[str]]:
    """The program's source, each module's expected name prefix, each optimizer's expected name."""
    top = ["import torch", "from torch import nn", "import graphprobe", "",
           "NETS, OPTS, KEEP = [], [], []", "", ""]
    factories, setup, calls = [], [], []
    prefixes: list[str] = []
    counts = {"list": 0, "global": 0, "closure": 0}
    for i, h in enumerate(prog.holders):
        setup.append(f"m_{i} = nn.Linear(4, 4)")
        if h == "attr":
            setup.append(f"tr.m{i} = m_{i}")
            prefixes.append(f"self.m{i}")
            calls.append(f"self.m{i}")
        elif h == "list":
            k = counts["list"]
            counts["list"] += 1
            setup.append(f"tr.nets.append(m_{i})")
            prefixes.append(f"self.nets[{k}]")
            calls.append(f"self.nets[{k}]")
        elif h == "dict":
            setup.append(f'tr.nets_d["k{i}"] = m_{i}')
            prefixes.append(f'self.nets_d["k{i}"]')
            calls.append(f'self.nets_d["k{i}"]')
        elif h == "global":
            k = counts["global"]
            counts["global"] += 1
            setup.append(f"NETS.append(m_{i})")
            prefixes.append(f"NETS[{k}]")
            calls.append(f"NETS[{k}]")
        elif h == "closure":
            k = counts["closure"]
            counts["closure"] += 1
            factories += [f"def make_{i}(mod{i}):", "    def fwd(x):", f"        return mod{i}(x)",
                          "    return fwd", ""]
            setup.append(f"tr.fns.append(make_{i}(m_{i}))")
            prefixes.append(f"mod{i}")
            calls.append(f"self.fns[{k}]")
        else:  # "arg"
            setup.append(f"ex = m_{i}")
            prefixes.append("extra")
            calls.append("extra")
    opt_names: list[str] = []
    for k, holder in enumerate(prog.opt_holders):
        mods = [i for i, o in enumerate(prog.opt_of) if o == k]
        cls = OPT_CLASSES[k]
        make = f"torch.optim.{cls}([" + ", ".join(f"*m_{i}.parameters()" for i in mods) + "], lr=0.01)"
        if holder == "attr":
            setup.append(f"tr.opt{k} = {make}")
            opt_names.append(f"self.opt{k}")
        elif holder == "dict":
            setup.append(f'tr.opts["o{k}"] = {make}')
            opt_names.append(f'self.opts["o{k}"]')
        elif holder == "list":
            setup.append(f"tr.opt_list.append({make})")
            opt_names.append(f"self.opt_list[{len([h for h in prog.opt_holders[:k] if h == 'list'])}]")
        elif holder == "global":
            setup.append(f"OPTS.append({make})")
            opt_names.append(f"OPTS[{len([h for h in prog.opt_holders[:k] if h == 'global'])}]")
        else:  # only a bound method keeps it: no name reaches it
            setup.append(f"KEEP.append({make}.step)")
            opt_names.append(cls)
    setup.append("del " + ", ".join(f"m_{i}" for i in range(len(prog.holders))))
    body = ["        h = x"]
    for i, call in enumerate(calls):
        inp = "h.detach()" if i and prog.detach[i - 1] else "h"
        body.append(f"        h{i} = {call}({inp})")
        body.append(f"        h = h{i}")
    loss = " + ".join([f"h{len(calls) - 1}.pow(2).mean()"] + [f"h{j}.sum()" for j in prog.extra_losses])
    body.append(f"        loss = {loss}")
    if prog.nested:
        body += ["        def report():", "            return graphprobe.probe(loss)", "        return report(), loss"]
    else:
        body.append("        return graphprobe.probe(loss), loss")
    cls_src = ["class Trainer:", "    def __init__(self):",
               "        self.nets, self.nets_d, self.fns, self.opts, self.opt_list = [], {}, [], {}, []", "",
               "    def step(self, x, extra=None):"] + body + [""]
    main = ["torch.manual_seed(0)", "tr = Trainer()", "ex = None"] + setup + \
           ["REPORT, LOSS = tr.step(torch.randn(3, 4), ex)", ""]
    text = "\n".join(top + factories + cls_src + main)
    return text, prefixes, opt_names


def check_held_program(prog: HeldProgram) -> None:
    text, prefixes, opt_names = generate_held(prog)
    path = os.path.join(TMP_DIR, f"held_{next(_FILE_NO)}.py")
    with open(path, "w") as fh:
        fh.write(text)
    ns: dict = {"__name__": "graphprobe_fuzz_program", "__file__": path}
    code = compile(text, path, "exec")
    if prog.traced:
        with graphprobe.trace():
            exec(code, ns)
    else:
        exec(code, ns)
    why = f"\n--- {path} ---\n{text}"
    r, loss = ns["REPORT"], ns["LOSS"]
    mods = [ns["tr"].__dict__.get(f"m{i}") for i in range(len(prefixes))]
    # The modules, found again by the way the program placed them (for the oracle's tensors).
    tr = ns["tr"]
    lists = {"list": iter(tr.nets), "global": iter(ns["NETS"]), "closure": iter(tr.fns)}
    for i, h in enumerate(prog.holders):
        if h == "list" or h == "global":
            mods[i] = next(lists[h])
        elif h == "dict":
            mods[i] = tr.nets_d[f"k{i}"]
        elif h == "closure":
            mods[i] = next(lists[h]).__closure__[0].cell_contents
        elif h == "arg":
            mods[i] = ns["ex"]
    named = {f"{pre}.{w}": getattr(m, w) for pre, m in zip(prefixes, mods) for w in ("weight", "bias")}
    got = {p["name"]: p["optimizers"] for p in r.params}
    expect = {f"{pre}.{w}": ([opt_names[prog.opt_of[i]]] if prog.opt_of[i] is not None else [])
              for i, pre in enumerate(prefixes) for w in ("weight", "bias")}
    assert got == expect, f"names/optimizers {got}, expected {expect}{why}"
    grads = torch.autograd.grad(loss, list(named.values()), allow_unused=True, retain_graph=True)
    oracle = {n for n, g in zip(named, grads) if g is not None}
    assert set(r.reaches["loss"]) == oracle, f"reaches {r.reaches['loss']}, autograd {sorted(oracle)}{why}"


HELD_SETTINGS = {
    "ci": settings(max_examples=60, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow]),
    "long": settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow]),
}


@settings(HELD_SETTINGS["ci"], max_examples=10)
@given(held_programs())
@example(HeldProgram(("attr", "closure", "dict"), (False, True), (0, None, 1), ("hidden", "dict"), (0,), True, False))
def test_models_and_optimizers_held_on_objects_are_named_by_their_path(prog):
    check_held_program(prog)


@pytest.mark.slow
@HELD_SETTINGS[PROFILE]
@given(held_programs())
def test_models_and_optimizers_held_on_objects_are_named_by_their_path_full(prog):
    check_held_program(prog)


# -- write paths ---------------------------------------------------------------------------------
# Programs whose links write into buffers: data is written into a tensor or an ndarray that the
# next module reads (``buf[idx] = x``, ``copy_``, ``out=``, ``index_put_``, numpy ``a[...] = x``,
# ``np.copyto``, writes under ``no_grad``), or written with gradient intact (no cut), or a
# tensor that requires grad gets a detached column written into it (the cut closes at the
# write; the other columns still carry gradient). Same oracles: autograd's reach, and the cut
# links into live modules as (kind, line) sets.

WRITE_KINDS = ["direct", "grad_write", "setitem", "copy", "out", "index_put", "np_setitem", "np_copyto",
               "no_grad_write", "grad_target"]
WRITE_EXITS = {  # kind -> forms: (lines, cut kind or None); {z} the input, {t} the result, EXIT marks
    "direct": [(["{t} = {z}"], None)],
    "grad_write": [(["{t} = torch.zeros(2, 4)", "{t}[:] = {z}"], None),
                   (["{t} = torch.zeros(2, 4)", "{t}.copy_({z})"], None),
                   (["{t} = torch.zeros(2, 4)", "{t}[:, :2] = {z}[:, :2]", "{t}[:, 2:] = {z}[:, 2:] * 0.5"], None),
                   (["{t} = torch.zeros(2, 4)", "{t}.index_put_((torch.arange(2),), {z})"], None)],
    "setitem": [(["{t} = torch.zeros(2, 4)", "{t}[:] = {z}.detach()  # EXIT"], "detach"),
                (["{t} = torch.zeros(2, 4)", "for r in range(2):", "    {t}[r] = {z}[r].data  # EXIT"], "data"),
                (["{t} = torch.ones(2, 4)", "{t}[:, 1:] = {z}.detach()[:, 1:] * 2.0  # EXIT"], "detach")],
    "copy": [(["{t} = torch.empty(2, 4)", "{t}.copy_({z}.detach())  # EXIT"], "detach"),
             (["{t} = torch.zeros(4, 4)", "{t}[:2].copy_({z}.data)  # EXIT", "{t} = {t}[:2]"], "data")],
    "out": [(["{t} = torch.empty(2, 4)", "torch.mul({z}.detach(), 1.5, out={t})  # EXIT"], "detach"),
            (["{t} = torch.empty(2, 4)", "torch.add({z}.data, 0.5, out={t})  # EXIT"], "data")],
    "index_put": [(["{t} = torch.zeros(2, 4)", "{t}.index_put_((torch.arange(2),), {z}.detach())  # EXIT"], "detach"),
                  (["{t} = torch.zeros(2, 4)", "{t}.index_add_(0, torch.arange(2), {z}.data)  # EXIT"], "data")],
    "np_setitem": [(["a_ = np.zeros((2, 4), dtype=np.float32)", "a_[:, :] = {z}.detach().numpy()  # EXIT",
                     "{t} = torch.from_numpy(a_)"], "numpy"),
                   (["a_ = np.zeros((2, 4), dtype=np.float32)", "a_[:, 0] = {z}.detach().numpy()[:, 0]  # EXIT",
                     "a_[:, 1:] = 0.5", "{t} = torch.as_tensor(a_)"], "numpy")],
    "np_copyto": [(["a_ = np.empty((2, 4), dtype=np.float32)", "np.copyto(a_, {z}.detach().numpy())  # EXIT",
                    "{t} = torch.tensor(a_)"], "numpy"),
                  (["a_ = np.ones((2, 4), dtype=np.float32)", "np.multiply({z}.detach().numpy(), 2.0, out=a_)  # EXIT",
                    "{t} = torch.from_numpy(a_)"], "numpy")],
    "no_grad_write": [(["{t} = torch.zeros(2, 4)", "with torch.no_grad():", "    {t}.copy_({z})  # EXIT"], "no_grad"),
                      (["{t} = torch.zeros(2, 4)", "with torch.no_grad():", "    {t}[:] = {z} * 2.0  # EXIT"], "no_grad"),
                      (["{t} = torch.zeros(2, 4)", "with torch.no_grad():", "    torch.tanh({z}, out={t})  # EXIT"], "no_grad"),
                      (["{t} = torch.zeros(2, 4)", "with torch.no_grad():",
                        "    {t}.scatter_add_(0, torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0]]), {z})  # EXIT"], "no_grad")],
    "grad_target": [(["{t} = {z} * 1.0", "{t}[:, 0] = {z}.detach()[:, 0]  # EXIT"], "detach")],
}


class WLink(NamedTuple):
    kind: str
    form: int
    in_func: bool  # the write happens in a helper function of the script


class WProgram(NamedTuple):
    n: int
    srcs: tuple     # for modules 1..n-1: the earlier output each reads
    links: tuple    # one WLink per module 1..n-1
    losses: tuple   # tuples of module indices


@st.composite
def write_programs(draw):
    n = draw(st.integers(2, 4))
    srcs = tuple(draw(st.integers(0, i - 1)) for i in range(1, n))
    links = tuple(WLink(k, draw(st.integers(0, 3)), draw(st.booleans()))
                  for k in (draw(st.sampled_from(WRITE_KINDS)) for _ in range(1, n)))
    losses = draw(st.lists(st.lists(st.integers(0, n - 1), min_size=1, max_size=2, unique=True).map(tuple),
                           min_size=1, max_size=2))
    return WProgram(n, srcs, links, tuple(losses))


def generate_writes(prog: WProgram) -> tuple[str, list[tuple[int, str, int]]]:
    """The script for ``prog``, and each cut link as (downstream module, kind, exit line)."""
    helpers: list[str] = []
    main = ["torch.manual_seed(0)"] + [f"m{i} = nn.Linear(4, 4)" for i in range(prog.n)]
    main += ["x = torch.ones(2, 4) * 0.3", "h0 = m0(x)"]
    marks: list[tuple[int, str, list[str], int]] = []  # (module, kind, the block, its line index)
    for i, (src, link) in enumerate(zip(prog.srcs, prog.links), start=1):
        forms = WRITE_EXITS[link.kind]
        lines, cut = forms[link.form % len(forms)]
        if link.in_func:
            body = ["    " + s.format(z="z", t="t") for s in lines]
            helpers += ["", f"def wlink{i}(z):"] + body + ["    return t"]
            block, where = helpers, len(helpers) - len(body) - 1
            main.append(f"t{i} = wlink{i}(h{src})")
        else:
            body = [s.format(z=f"h{src}", t=f"t{i}").replace("a_", f"a{i}") for s in lines]
            block, where = main, len(main)
            main += body
        if cut is not None:
            k = next(j for j, s in enumerate(body) if "# EXIT" in s)
            marks.append((i, cut, block, where + k))
        main.append(f"h{i} = m{i}(t{i})")
    for k, terms in enumerate(prog.losses):
        main.append(f"L{k} = " + " + ".join(f"h{j}.pow(2).mean()" for j in terms))
    head = ["import numpy as np", "import torch", "from torch import nn"]
    text = "\n".join(head + helpers + [""] + main) + "\n"
    offset = {id(helpers): len(head), id(main): len(head) + len(helpers) + 1}
    cuts = [(i, kind, offset[id(block)] + idx + 1) for i, kind, block, idx in marks]
    return text, cuts


CHECKED_WRITES = {"programs": 0}


@settings(max_examples=12, deadline=None, derandomize=True,
          database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(write_programs())
def test_generated_write_programs_match_autograd(prog):
    check_write_program(prog)


@pytest.mark.slow
@settings(max_examples=150 if PROFILE == "ci" else 2000, deadline=None, derandomize=PROFILE == "ci",
          database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(write_programs())
def test_generated_write_programs_match_autograd_full(prog):
    check_write_program(prog)


def check_write_program(prog) -> None:
    text, cuts = generate_writes(prog)
    path = os.path.join(TMP_DIR, f"wprog_{next(_FILE_NO)}.py")
    with open(path, "w") as fh:
        fh.write(text)
    why = f"\n--- {path} ---\n{text}"
    ns: dict = {"__name__": "graphprobe_fuzz_program", "__file__": path}
    names = [f"L{k}" for k in range(len(prog.losses))]
    try:
        with graphprobe.trace():
            exec(compile(text, path, "exec"), ns)
            params = {f"m{i}": ns[f"m{i}"] for i in range(prog.n)}
            losses = [ns[nm] for nm in names]
            r = graphprobe.probe(*losses, params=params, names=names)
        all_params = [(f"{mn}.{pn}", p) for mn, m in params.items() for pn, p in m.named_parameters()]
        for name, loss in zip(names, losses):
            grads = torch.autograd.grad(loss, [p for _, p in all_params], allow_unused=True, retain_graph=True)
            oracle = {pn for (pn, _), g in zip(all_params, grads) if g is not None}
            assert set(r.reaches[name]) == oracle, f"reaches[{name}] = {r.reaches[name]}, autograd: {sorted(oracle)}{why}"
        live = {j for terms in prog.losses for j in terms}
        for i in range(prog.n - 1, 0, -1):
            if i in live:
                live.add(prog.srcs[i - 1])
        expected = {(kind, line) for i, kind, line in cuts if i in live}
        reported = set()
        for c in r.cuts:
            # A no_grad cut's location is its `with` line; the write inside it is exit_location.
            file, _, line = (c.get("exit_location") or c["location"]).rpartition(":")
            assert file == path, f"cut located outside the program: {c['location']}{why}"
            reported.add((c["kind"], int(line)))
        assert reported == expected, f"missing {sorted(expected - reported)}, invented {sorted(reported - expected)}{why}"
    except BaseException:
        CHECKED["failed"] += 1
        raise
    CHECKED_WRITES["programs"] += 1
