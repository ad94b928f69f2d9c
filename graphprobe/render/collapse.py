"""The view: the graph a picture draws, made once from a report and handed to every renderer.

A picture of every autograd node stops being readable at a few hundred nodes and slow to lay
out at a few thousand. :func:`make_view` turns a report into the *view* that is drawn:

- what tells the story stays expanded: the losses, the starved parameters, the leaves rebuilt
  after a cut, the neighbourhood of every cut, freed nodes (up to a limit);
- everything else folds by module, at the deepest module depth whose view fits a budget of
  visible nodes (about 200 by default);
- repeated structure folds into one ``×N`` block: numbered siblings (``layers.0`` ...
  ``layers.23`` become ``layers.0-23 ×24``), and a module called N times (an RNN cell over its
  time steps, a policy over an episode) is one group labelled with its N calls;
- modules named in ``expand`` keep full detail.

The view is one transform applied once: its report's every id (losses, parameters, cuts,
findings, opaque regions, errors) names a node of the view's graph, so the SVG ids (``n{i}``)
equal the ids in the JSON the HTML page embeds. ``members`` says which original nodes each
folded group holds, for the page's detail on demand.

The drawn cut edge ends at the leaf rebuilt after the cut (``tmp``), not at the op that reads it,
so the picture shows that ``tmp`` *is* the rebuilt copy; the report's ``cut["to"]`` still names
that op.
"""
from __future__ import annotations

import copy
import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from ..model.graph import ProbeGraph
from ..model.report import ReportData

__all__ = ["View", "make_view", "collapse", "visible_count", "auto_depth", "DEFAULT_BUDGET"]

#: Visible nodes the default picture aims at: a screen's worth.
DEFAULT_BUDGET = 200
_NUM = re.compile(r"^(.*)\.(\d+)$")
_MAX_FREED_KEPT = 60
#: Nodes kept expanded around each cut (both sides together), and cuts that get a neighbourhood.
_CUT_HOOD = 12
_MAX_CUT_HOODS = 8
OUTSIDE = "(outside modules)"


@dataclass
class View:
    """What a picture draws.

    Attributes
    ----------
    report : ReportData
        The report whose ids are the drawn ids (``report.model`` is the drawn graph).
    original : ReportData
        The report the view was made from.
    new_id : list of int
        For each original node, the drawn node that shows it.
    members : dict of int to list of int
        For each folded group node, the original nodes it holds (in id order).
    groups : dict of int to dict
        For each folded group node: ``ops``, ``params``, ``starved`` (parameters in it that get
        no gradient), ``calls`` (how many times its module ran, when it ran more than once).
    collapsed : bool
        Whether anything was folded.
    depth : int or None
        The module depth the view folds at.
    note : str
        One line saying what was folded, empty when nothing was.
    cut_merge : dict of int to list of int
        Cut index drawn -> every cut index its edge stands for, where cuts of one line between
        the same two drawn nodes share an edge (an ``.item()`` at each of 80 time steps).
    """

    report: ReportData
    original: ReportData
    new_id: list[int]
    members: dict[int, list[int]] = field(default_factory=dict)
    groups: dict[int, dict[str, int]] = field(default_factory=dict)
    collapsed: bool = False
    depth: int | None = None
    note: str = ""
    cut_merge: dict[int, list[int]] = field(default_factory=dict)


def _key_at(path: str | None, depth: int) -> str | None:
    if not path:
        return None
    parts = path.split(".")
    return ".".join(parts[:depth])


def _fold(keys: set[str]) -> dict[str, str]:
    """Map numbered siblings ``p.0 .. p.k`` (three or more) to one ``p.0-k ×n`` prefix."""
    by_prefix: dict[str, set[int]] = {}
    for k in keys:
        parts = k.split(".")
        for i in range(1, len(parts)):
            if parts[i].isdigit():
                by_prefix.setdefault(".".join(parts[:i]), set()).add(int(parts[i]))
    out: dict[str, str] = {}
    for prefix, nums in by_prefix.items():
        if len(nums) >= 3:
            lo, hi = min(nums), max(nums)
            name = f"{prefix}.{lo}-{hi} ×{len(nums)}"
            for i in nums:
                out[f"{prefix}.{i}"] = name
    return out


def _cut_heads(g: ProbeGraph) -> list[int]:
    """For each cut edge, the node its drawn edge ends at: the rebuilt leaf when there is one.

    The recorder's cut ends at the op that reads the re-entered tensor; that op's producer of
    kind ``reentry_leaf`` (or ``leaf``) is the rebuilt tensor itself. Each leaf is used once, so
    two cuts into one ``torch.cat`` end at their own leaves. Complexity: O(cuts · fan-in).
    """
    producers = g.producers() if g.cut_edges else []
    used: set[int] = set()
    heads: list[int] = []
    for s, d, _ in g.cut_edges:
        head = d
        if g.kind[d] == "op":
            leaves = [p for p in producers[d] if g.kind[p] in ("reentry_leaf", "leaf")]
            leaves.sort(key=lambda p: (g.kind[p] != "reentry_leaf", p))
            free = [p for p in leaves if p not in used] or leaves
            if free:
                head = free[0]
                used.add(head)
        heads.append(head)
    return heads


def _keep_alone(report: ReportData, heads: Sequence[int], budget: int) -> set[int]:
    """The nodes that stay expanded whatever the depth: what the findings are about."""
    g = report.model
    keep = set(g.losses)
    starved = [d["node"] for d in report.detached
               if d.get("node") is not None and d.get("severity") != "info" and d.get("kind") == "unreached"]
    # A few starved parameters are drawn one by one; many (a whole detector) are shown by the
    # groups that hold them, marked with how many of theirs get no gradient.
    if len(starved) <= max(8, budget // 4):
        keep.update(starved)
    keep.update(d["node"] for d in report.detached
                if d.get("node") is not None and d.get("kind") == "reentry_leaf")
    keep.update(sorted(g.freed)[:_MAX_FREED_KEPT])
    keep.update(v for v in g.opaque if len(g.opaque) <= 20)
    if g.cut_edges:
        producers = g.producers()
        consumers: list[list[int]] = [[] for _ in range(len(g.kind))]
        for s, d in zip(g.src, g.dst):
            consumers[s].append(d)
        hoods = 0
        per_line: Counter[Any] = Counter()
        for (s, d, ci), h in zip(g.cut_edges, heads):
            cut = report.cuts[ci] if 0 <= ci < len(report.cuts) else {}
            line = (cut.get("location"), cut.get("kind"))
            per_line[line] += 1
            if per_line[line] > 2:
                continue  # the same line cut again at every time step: two copies tell it
            keep.update((s, d, h))
            if hoods >= _MAX_CUT_HOODS:
                continue
            hoods += 1
            # Breadth first from both ends: upstream of the source, downstream of the head.
            ring = [(s, producers), (h, consumers), (d, consumers)]
            got = 0
            queue = [(v, nb) for v, nb in ring]
            seen = {s, d, h}
            for v, nb in queue:
                if got >= _CUT_HOOD:
                    break
                for w in nb[v]:
                    if w not in seen and g.kind[w] in ("op", "param", "leaf", "reentry_leaf"):
                        seen.add(w)
                        keep.add(w)
                        got += 1
                        queue.append((w, nb))
                        if got >= _CUT_HOOD:
                            break
    return keep


def _module_keys(modules: Sequence[str | None], depth: int, expand: Sequence[str],
                 memo: dict[Any, Any] | None = None, split: bool = False) -> dict[str | None, str | None]:
    """For each distinct module path, its group's name at ``depth`` (None: drawn in full).

    ``memo`` lets one :func:`make_view` call ask :func:`auto_depth`'s questions only once.
    ``split`` keeps the parts of a folded ``×N`` block apart (``layers.0-23 ×24 › attn``); by
    default a folded block is one node, since its parts fed by N copies draw as a tangle.
    """
    if memo is None:
        return _module_keys_uncached(modules, depth, expand, split)
    key = (depth, tuple(expand), split)
    out = memo.get(key)
    if out is None:
        out = memo[key] = _module_keys_uncached(modules, depth, expand, split)
    return out


def _module_keys_uncached(modules: Sequence[str | None], depth: int,
                          expand: Sequence[str], split: bool = False) -> dict[str | None, str | None]:

    def expanded(mod: str | None) -> bool:
        return any(mod == e or (mod or "").startswith(e + ".") for e in expand)

    by_module: dict[str | None, str | None] = {}
    for mod in modules:
        if expanded(mod):
            by_module[mod] = None
        else:
            k = _key_at(mod, depth)
            by_module[mod] = k if k is not None else OUTSIDE
    folds = _fold({k for k in by_module.values() if k is not None})
    if folds:
        # layers.3.attn -> "layers.0-23 ×24 › attn": one copy of the block's structure.
        def fold(k: str | None) -> str | None:
            if k is None:
                return None
            parts = k.split(".")
            for i in range(1, len(parts)):  # only a numbered component can start a fold
                if parts[i].isdigit():
                    f = folds.get(".".join(parts[:i + 1]))
                    if f is not None:
                        rest = ".".join(parts[i + 1:]) if split else ""
                        return f + (" › " + rest if rest else "")
            return k

        by_module = {m: fold(k) for m, k in by_module.items()}
    return by_module


def _group_keys(report: ReportData, depth: int, expand: Sequence[str], keep: set[int],
                memo: dict[Any, Any] | None = None, split: bool = False) -> list[str | None]:
    """For each node, the name of the group it joins (None: it stays a node of its own).

    Keys are worked out once per distinct module path (a model has hundreds, a graph can have
    hundreds of thousands of nodes), then looked up per node.
    """
    g = report.model
    by_module = _module_keys(list(set(g.module)), depth, expand, memo, split)
    return [None if v in keep else by_module[mod] for v, mod in enumerate(g.module)]


def visible_count(report: ReportData, depth: int, expand: Sequence[str] = (),
                  budget: int = DEFAULT_BUDGET) -> int:
    """How many nodes the view at ``depth`` draws. Complexity: O(V)."""
    keep = _keep_alone(report, _cut_heads(report.model), budget)
    keys = _group_keys(report, depth, expand, keep)
    return sum(1 for k in keys if k is None) + len({k for k in keys if k is not None})


def auto_depth(report: ReportData, budget: int, expand: Sequence[str] = (),
               memo: dict[Any, Any] | None = None, keep: set[int] | None = None) -> int:
    """The deepest module depth whose view fits ``budget`` nodes (at least 1).

    Complexity: O(V) once, then O(M) per depth tried over the M distinct module paths.
    """
    g = report.model
    if keep is None:
        keep = _keep_alone(report, _cut_heads(g), budget)
    per_module: Counter[str | None] = Counter(mod for v, mod in enumerate(g.module) if v not in keep)
    alone = len(keep)
    all_modules = list(set(g.module))  # the same list _group_keys uses, so memo answers agree
    max_depth = max((len(m.split(".")) for m in per_module if m), default=1)
    best = 1
    for d in range(1, max_depth + 1):
        keys = _module_keys(all_modules, d, expand, memo)
        groups = {k for k in keys.values() if k is not None}
        singles = sum(n for m, n in per_module.items() if keys[m] is None)
        if alone + singles + len(groups) <= budget:
            best = d
        else:
            break
    return best


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _calls(g: ProbeGraph, nodes: Sequence[int]) -> int:
    """How many times the module behind a group ran, when it ran more than once.

    A module run N times (a GRUCell over 2,000 time steps, a policy over an 80-step episode)
    leaves each of its own ops a multiple of N times under its path: N is the greatest common
    divisor of those counts, for a path with two kinds of op or more. A loop inside one forward
    (a detector's ``relu`` after each of 30 layers, then one ``mean``) gives 1, and so does a
    block whose only own ops are its two residual adds. The group's count is the largest over
    its paths. Complexity: O(len(nodes)).
    """
    by_path: dict[str, Counter[str]] = {}
    for v in nodes:
        m = g.module[v]
        if m and g.kind[v] == "op":
            by_path.setdefault(m, Counter())[g.label[v]] += 1
    return max((math.gcd(*c.values()) for c in by_path.values() if len(c) >= 2), default=1)


def make_view(report: ReportData, depth: int | None = None, expand: Sequence[str] = (),
              budget: int | None = DEFAULT_BUDGET) -> View:
    """The view a picture of ``report`` draws (see the module docstring).

    Parameters
    ----------
    report : ReportData
    depth : int, optional
        Module path components kept (``1``: ``encoder``; ``2``: ``encoder.layers``). By default
        the deepest depth that fits ``budget``.
    expand : sequence of str
        Module paths drawn in full detail.
    budget : int or None
        Visible nodes the view aims at; None draws every node unless ``depth`` is given.

    Returns
    -------
    View
        Its ``report`` holds the same findings, every id rewritten to a drawn node.

    Notes
    -----
    Complexity: O(V + E) once, plus O(M) per depth tried over the M distinct module paths.
    """
    g = report.model
    heads = _cut_heads(g)
    fold = depth is not None or (budget is not None and len(g.kind) > budget)
    if not fold:
        return _identity(report, heads)
    b = budget or DEFAULT_BUDGET
    keep = _keep_alone(report, heads, b)
    memo: dict[Any, Any] = {}
    split = depth is not None  # a depth asked for opens folded blocks into their parts
    if depth is None:
        depth = auto_depth(report, b, expand, memo, keep)
    keys = _group_keys(report, depth, expand, keep, memo, split)
    c = ProbeGraph()
    new_id: list[int] = [0] * len(g.kind)
    group_id: dict[str, int] = {}
    members: dict[int, list[int]] = {}
    for v, k in enumerate(keys):
        if k is None:
            nid = c.add_node(g.kind[v], g.label[v], g.op[v], g.module[v], g.name[v])
            _copy_node(g, v, c, nid)
        else:
            known = group_id.get(k)
            if known is not None:
                nid = known
            else:
                head = k.split(" › ")[0].split(" ")[0]  # "model.h.0-23" of "model.h.0-23 ×24 › attn"
                parent = head.rsplit(".", 1)[0] if "." in head else None
                nid = c.add_node("module", k, None, parent, k)
                group_id[k] = nid
                members[nid] = []
            members[nid].append(v)
            if v in g.freed:
                c.freed.add(nid)
        new_id[v] = nid
    starved_nodes = {d["node"] for d in report.detached
                     if d.get("node") is not None and d.get("severity") != "info" and d.get("kind") == "unreached"}
    groups: dict[int, dict[str, int]] = {}
    for nid, vs in members.items():
        params = sum(1 for v in vs if g.kind[v] == "param")
        info = {"ops": len(vs) - params, "params": params,
                "starved": sum(1 for v in vs if v in starved_nodes), "calls": _calls(g, vs)}
        groups[nid] = info
        bits = [_plural(info["ops"], "op")]
        if params:
            bits.append(_plural(params, "param"))
        title = c.label[nid]
        if info["calls"] > 1:
            title += f" ×{info['calls']} calls"
        c.label[nid] = f"{title}\n" + " · ".join(bits)
    seen: set[tuple[int, int]] = set()
    for s, d in zip(g.src, g.dst):
        a, b2 = new_id[s], new_id[d]
        if a != b2 and (a, b2) not in seen:
            seen.add((a, b2))
            c.src.append(a)
            c.dst.append(b2)
    _copy_sets(g, c, new_id)
    # Cuts of one line between the same two drawn nodes are one edge; cut_merge keeps the rest.
    first_of: dict[tuple[int, int, Any], int] = {}
    cut_merge: dict[int, list[int]] = {}
    for (s, _d, i), h in zip(g.cut_edges, heads):
        a, b2 = new_id[s], new_id[h]
        cut = report.cuts[i] if 0 <= i < len(report.cuts) else {}
        key = (a, b2, (cut.get("location"), cut.get("kind")))
        j = first_of.get(key)
        if j is None:
            first_of[key] = i
            cut_merge[i] = [i]
            c.cut_edges.append((a, b2, i))
        elif i not in cut_merge[j]:
            cut_merge[j].append(i)
    note = (f"collapsed view: {len(c.kind)} of {len(g.kind)} nodes drawn (module depth {depth}"
            + (f", expanded: {', '.join(expand)}" if expand else "") + ")")
    out = _remap(report, c, new_id)
    out.notes = list(report.notes) + [note]
    return View(out, report, new_id, members, groups, True, depth, note,
                {i: m for i, m in cut_merge.items() if len(m) > 1})


def _copy_node(g: ProbeGraph, v: int, c: ProbeGraph, nid: int) -> None:
    m = g.meta.get(v)
    if m is not None:
        c.meta[nid] = m
    if v in g.location:
        c.location[nid] = g.location[v]
    if v in g.freed:
        c.freed.add(nid)
    if v in g.frozen:
        c.frozen.add(nid)
    if v in g.optimizers:
        c.optimizers[nid] = g.optimizers[v]
    if v in g.param_order:
        c.param_order[nid] = g.param_order[v]


def _copy_sets(g: ProbeGraph, c: ProbeGraph, new_id: list[int]) -> None:
    c.losses = [new_id[v] for v in g.losses]
    c.composite = {new_id[v] for v in g.composite}
    c.terms = {new_id[v] for v in g.terms}
    for v, kind in g.opaque.items():
        c.opaque.setdefault(new_id[v], kind)


def _identity(report: ReportData, heads: list[int]) -> View:
    """The view of a graph drawn whole: the same ids; only the cut edges end at their leaves."""
    g = report.model
    edges = [(s, h, i) for (s, _d, i), h in zip(g.cut_edges, heads)]
    model = g
    if edges != g.cut_edges:
        model = copy.copy(g)  # the same columns (shared, never written); only the cut edges differ
        model.cut_edges = list(dict.fromkeys(edges))
    out = replace(report, model=model) if model is not g else report
    return View(out, report, list(range(len(g.kind))))


def _remap(report: ReportData, c: ProbeGraph, new_id: list[int]) -> ReportData:
    """``report`` over graph ``c``: every node id in every finding rewritten with ``new_id``."""

    def nid(v: Any) -> Any:
        return new_id[v] if isinstance(v, int) and 0 <= v < len(new_id) else v

    def node_ref(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "node": nid(d["node"])} if "node" in d else dict(d)

    out = replace(report, model=c)
    out.losses = [node_ref(x) for x in report.losses]
    out.params = [node_ref(x) for x in report.params]
    out.shared = [{**sh, "nodes": sorted({nid(v) for v in sh.get("nodes", [])})} for sh in report.shared]
    out.detached = [node_ref(d) for d in report.detached]
    out.freed = [node_ref(f) for f in report.freed]
    out.frozen = [node_ref(f) for f in report.frozen]
    out.opaque = [node_ref(o) for o in report.opaque]
    out.errors = [{**node_ref(e), **({"nodes": [node_ref(x) for x in e["nodes"]]} if isinstance(e.get("nodes"), list) else {})}
                  for e in report.errors]
    out.cuts = [{**cut, "from": node_ref(cut["from"]), "to": node_ref(cut["to"]),
                 "sources": sorted({nid(v) for v in cut.get("sources", [])})}
                for cut in report.cuts]
    return out


def collapse(report: ReportData, depth: int | None = None, expand: Sequence[str] = (),
             budget: int = DEFAULT_BUDGET) -> ReportData:
    """The folded view's report (see :func:`make_view`), folding even a small graph.

    Kept for callers that want a report back; :func:`make_view` also says which original nodes
    each group holds.
    """
    if depth is None and len(report.model) <= budget:
        depth = auto_depth(report, budget, expand)
    return make_view(report, depth, expand, budget).report
