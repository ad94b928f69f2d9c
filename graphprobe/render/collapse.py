"""Collapsing a big graph for drawing: one node per module, repeated blocks folded.

Above a node budget a picture of every autograd node is unreadable and slow to lay out. The
collapsed view groups nodes by their module path cut to ``depth`` components, folds numbered
siblings (``layers.0`` ... ``layers.23``) into one ``layers.0-23 ×24`` node, and keeps as their
own nodes everything a finding points at: losses, detached parameters, re-entry leaves, freed
nodes (up to a limit) and both ends of every cut edge's module. Modules named in ``expand`` keep
full detail.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Sequence

from ..graph import ProbeGraph
from ..report import Report

__all__ = ["collapse", "visible_count", "auto_depth"]

_NUM = re.compile(r"^(.*)\.(\d+)$")
_MAX_FREED_KEPT = 200


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


def _keep_alone(report: Report) -> set[int]:
    g = report.model
    keep = set(g.losses)
    keep.update(d["node"] for d in report.detached
                if d.get("node") is not None and d.get("severity") != "info")
    keep.update(sorted(g.freed)[:_MAX_FREED_KEPT])
    return keep


def _module_keys(modules: Sequence[str | None], depth: int, expand: Sequence[str],
                 memo: dict[Any, Any] | None = None) -> dict[str | None, str | None]:
    """For each distinct module path, its group's name at ``depth`` (None: drawn in full).

    ``memo`` lets one :func:`collapse` call ask :func:`auto_depth`'s questions only once.
    """
    if memo is None:
        return _module_keys_uncached(modules, depth, expand)
    key = (depth, tuple(expand))
    out = memo.get(key)
    if out is None:
        out = memo[key] = _module_keys_uncached(modules, depth, expand)
    return out


def _module_keys_uncached(modules: Sequence[str | None], depth: int,
                          expand: Sequence[str]) -> dict[str | None, str | None]:

    def expanded(mod: str | None) -> bool:
        return any(mod == e or (mod or "").startswith(e + ".") for e in expand)

    by_module: dict[str | None, str | None] = {}
    for mod in modules:
        if expanded(mod):
            by_module[mod] = None
        else:
            k = _key_at(mod, depth)
            by_module[mod] = k if k is not None else "(outside modules)"
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
                        rest = ".".join(parts[i + 1:])
                        return f + (" › " + rest if rest else "")
            return k

        by_module = {m: fold(k) for m, k in by_module.items()}
    return by_module


def _group_keys(report: Report, depth: int, expand: Sequence[str],
                memo: dict[Any, Any] | None = None) -> list[str | None]:
    """For each node, the name of the group it joins (None: it stays a node of its own).

    Keys are worked out once per distinct module path (a model has hundreds, a graph can have
    hundreds of thousands of nodes), then looked up per node.
    """
    g = report.model
    keep = _keep_alone(report)
    by_module = _module_keys(list(set(g.module)), depth, expand, memo)
    return [None if v in keep else by_module[mod] for v, mod in enumerate(g.module)]


def visible_count(report: Report, depth: int, expand: Sequence[str] = ()) -> int:
    """How many nodes the collapsed view at ``depth`` draws. Complexity: O(V)."""
    keys = _group_keys(report, depth, expand)
    return sum(1 for k in keys if k is None) + len({k for k in keys if k is not None})


def auto_depth(report: Report, budget: int, expand: Sequence[str] = (),
               memo: dict[Any, Any] | None = None) -> int:
    """The deepest module depth whose collapsed view fits ``budget`` nodes (at least 1).

    Complexity: O(V) once, then O(M) per depth tried over the M distinct module paths.
    """
    g = report.model
    keep = _keep_alone(report)
    per_module: dict[str | None, int] = {}
    alone = len(keep)
    for v, mod in enumerate(g.module):
        if v not in keep:
            per_module[mod] = per_module.get(mod, 0) + 1
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


def collapse(report: Report, depth: int | None = None, expand: Sequence[str] = (),
             budget: int = 1500) -> Report:
    """A report whose graph has one node per module group; findings point at the new ids.

    Parameters
    ----------
    report : Report
    depth : int, optional
        Module path components kept (``1``: ``encoder``; ``2``: ``encoder.layers``). By default
        the deepest depth that fits ``budget``.
    expand : sequence of str
        Module paths drawn in full detail.
    budget : int
        Node budget for the automatic depth.

    Returns
    -------
    Report
        Same findings; ``model`` is the coarse graph (node kind ``module`` for groups).

    Notes
    -----
    Complexity: O(V + E) per depth tried.
    """
    g = report.model
    memo: dict[Any, Any] = {}
    if depth is None:
        depth = auto_depth(report, budget, expand, memo)
    keys = _group_keys(report, depth, expand, memo)
    c = ProbeGraph()
    new_id: list[int] = [0] * len(g.kind)
    group_id: dict[str, int] = {}
    counts: dict[int, list[int]] = {}  # group node -> [ops, params]
    for v, k in enumerate(keys):
        if k is None:
            nid = c.add_node(g.kind[v], g.label[v], g.op[v], g.module[v], g.name[v])
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
        else:
            nid = group_id.get(k)
            if nid is None:
                head = k.split(" › ")[0].split(" ")[0]  # "model.h.0-23" of "model.h.0-23 ×24 › attn"
                parent = head.rsplit(".", 1)[0] if "." in head else None
                nid = c.add_node("module", k, None, parent, k)
                group_id[k] = nid
                counts[nid] = [0, 0]
            counts[nid][1 if g.kind[v] == "param" else 0] += 1
            if v in g.freed:
                c.freed.add(nid)
        new_id[v] = nid
    for nid, (ops, params) in counts.items():
        bits = [f"{ops} op{'s' if ops != 1 else ''}"]
        if params:
            bits.append(f"{params} param{'s' if params != 1 else ''}")
        c.label[nid] = f"{c.label[nid]}\n" + " · ".join(bits)
    seen: set[tuple[int, int]] = set()
    for s, d in zip(g.src, g.dst):
        a, b = new_id[s], new_id[d]
        if a != b and (a, b) not in seen:
            seen.add((a, b))
            c.src.append(a)
            c.dst.append(b)
    c.losses = [new_id[v] for v in g.losses]
    c.composite = {new_id[v] for v in g.composite}
    c.terms = {new_id[v] for v in g.terms}
    cut_seen: set[tuple[int, int, int]] = set()
    for s, d, i in g.cut_edges:
        e = (new_id[s], new_id[d], i)
        if e not in cut_seen:
            cut_seen.add(e)
            c.cut_edges.append(e)
    out = replace(report, model=c)
    out.shared = [{**sh, "nodes": sorted({new_id[v] for v in sh["nodes"]})} for sh in report.shared]
    out.detached = [{**d, "node": new_id[d["node"]]} if d.get("node") is not None else d
                    for d in report.detached]
    out.freed = [{**f, "node": new_id[f["node"]]} for f in report.freed]
    out.frozen = [{**f, "node": new_id[f["node"]]} for f in report.frozen]
    out.cuts = [{**cut, "from": {**cut["from"], "node": new_id[cut["from"]["node"]]},
                 "to": {**cut["to"], "node": new_id[cut["to"]["node"]]},
                 "sources": sorted({new_id[v] for v in cut.get("sources", [])})}
                for cut in report.cuts]
    out.notes = list(report.notes) + [
        f"collapsed view: {len(c.kind)} of {len(g.kind)} nodes drawn (module depth {depth}"
        + (f", expanded: {', '.join(expand)}" if expand else "") + ")"]
    return out
