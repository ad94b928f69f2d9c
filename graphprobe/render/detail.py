"""Detail on demand for the HTML page: what each folded group of a view holds, and its picture.

The page draws the view (:mod:`graphprobe.render.collapse`); a folded group is one node there.
For each group this module gives what the page needs to open it in place without the graph:

- ``members``: its first nodes (label, op, module, name, shape, source line), for search and
  for the details panel, capped so a group of 300k time steps costs what a group of 200 does;
- ``modules``: the module paths inside it, so a search for ``detector.layers.7`` finds it;
- ``svg``: a small picture of one copy of it, laid out beforehand (one engine run for all the
  groups): a folded ``layers.0-23 ×24`` shows ``layers.0`` with its parts; a module that ran
  2,000 times shows its last calls; anything else shows its own view at a small budget;
- ``nodes``: for each node of that picture (``g{group}_n{i}`` in the SVG), what it is.

Everything is bounded: at most :data:`MAX_PICTURES` pictures of :data:`INNER_BUDGET` nodes and
:data:`MAX_BYTES` of SVG in all, so the page's size follows what is drawn, not the graph.
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import GraphprobeError
from ..model.graph import ProbeGraph
from ..model.report import ReportData
from .collapse import View, make_view

__all__ = ["folded_detail", "MAX_PICTURES", "INNER_BUDGET", "MAX_BYTES", "MAX_MEMBERS"]

#: Folded groups that get a picture of their own, nodes in each, and SVG bytes in all.
MAX_PICTURES = 16
INNER_BUDGET = 40
MAX_BYTES = 900_000
#: Members listed per group (the rest are counted).
MAX_MEMBERS = 200
#: Members a group's picture is made from (a bigger group is sampled in id order).
_MAX_SUB = 3000
_FOLD = re.compile(r"^(?P<prefix>.*)\.(?P<lo>\d+)-\d+ ×\d+$")


def _shape(g: ProbeGraph, v: int) -> list[int] | None:
    m = g.meta.get(v)
    return list(m.shape) if m is not None else None


def _row(g: ProbeGraph, v: int) -> list[Any]:
    return [v, g.label[v], g.op[v], g.module[v], g.name[v], _shape(g, v), g.location.get(v)]


def _sub_report(g: ProbeGraph, nodes: list[int]) -> ReportData:
    """The subgraph of ``g`` on ``nodes`` (in the order given), as a report with no findings."""
    local = {v: i for i, v in enumerate(nodes)}
    sub = ProbeGraph()
    for v in nodes:
        nid = sub.add_node(g.kind[v], g.label[v], g.op[v], g.module[v], g.name[v])
        m = g.meta.get(v)
        if m is not None:
            sub.meta[nid] = m
        if v in g.location:
            sub.location[nid] = g.location[v]
    for s, d in zip(g.src, g.dst):
        a, b = local.get(s), local.get(d)
        if a is not None and b is not None:
            sub.add_edge(a, b)
    return ReportData(sub)


def _one_copy(g: ProbeGraph, name: str, members: list[int]) -> list[int]:
    """For a folded ``p.0-23 ×24`` group, the members of one copy of the block: the fullest one
    (a copy next to a cut has some of its nodes drawn on their own)."""
    head = name.split(" › ")[0]
    m = _FOLD.match(head)
    if m is None:
        return members
    prefix = m.group("prefix") + "."
    copies: dict[str, list[int]] = {}
    for v in members:
        mod = g.module[v] or ""
        if mod.startswith(prefix):
            copies.setdefault(mod[len(prefix):].split(".")[0], []).append(v)
    if not copies:
        return members
    return max(copies.values(), key=lambda vs: (len(vs), -vs[0]))


def _inner_view(g: ProbeGraph, name: str, members: list[int]) -> View:
    nodes = _one_copy(g, name, members)[:_MAX_SUB]
    inner = make_view(_sub_report(g, nodes), budget=INNER_BUDGET)
    if len(inner.report.model) <= 2 < len(nodes):
        # One module run many times folds to itself: show its last calls (the walk meets them
        # first) in full instead.
        inner = make_view(_sub_report(g, nodes[:INNER_BUDGET]), budget=None)
    return inner


_SVG_START = re.compile(r"<svg\b")


def _split_svgs(out: str) -> list[str]:
    """The SVG documents of one engine run over several graphs, in order."""
    starts = [m.start() for m in _SVG_START.finditer(out)]
    docs = []
    for i, a in enumerate(starts):
        b = starts[i + 1] if i + 1 < len(starts) else len(out)
        body = out[a:b]
        end = body.rfind("</svg>")
        docs.append(body[:end + 6] if end >= 0 else body)
    return docs


def _clean(svg: str, prefix: str) -> str:
    """An inner picture ready to nest: no comments or titles, every id prefixed."""
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r"<title>[^<]*</title>\n?", "", svg)
    m = re.match(r"<svg\b[^>]*>", svg)
    if m is not None:  # the page sizes the nested picture itself
        tag = re.sub(r'\s(?:xmlns(?::\w+)?|width|height)="[^"]*"', "", m.group(0))
        svg = tag + svg[m.end():]
    svg = re.sub(r'\bid="', f'id="{prefix}', svg)
    return re.sub(r"\n\s*", "\n", svg).strip()


def folded_detail(view: View, pictures: bool = True) -> dict[str, Any]:
    """What the page loads on demand for each folded group of ``view`` (see the module docstring).

    Returns
    -------
    dict
        ``{"groups": {"<group id>": {"name", "count", "members", "more", "modules", "svg",
        "nodes"}}, "member_columns": [...], "node_columns": [...]}``; ``svg`` is None for groups
        without a picture.

    Notes
    -----
    Complexity: O(V + E) for the members, plus one engine run over at most
    :data:`MAX_PICTURES` × :data:`INNER_BUDGET` nodes.
    """
    from .dot import DotOptions, view_dot
    from .engine import layout

    g = view.original.model
    drawn = view.report.model
    groups: dict[str, dict[str, Any]] = {}
    inner: list[tuple[str, View]] = []
    # The biggest groups first: they hide the most.
    order = sorted(view.members, key=lambda gid: (-len(view.members[gid]), gid))
    for gid in order:
        members = view.members[gid]
        name = drawn.name[gid] or drawn.label[gid]
        mods = sorted({m for m in (g.module[v] for v in members) if m})
        groups[str(gid)] = {"name": name, "count": len(members),
                            "members": [_row(g, v) for v in members[:MAX_MEMBERS]],
                            "more": max(0, len(members) - MAX_MEMBERS),
                            "modules": mods[:MAX_MEMBERS], "svg": None, "nodes": []}
        if pictures and len(inner) < MAX_PICTURES and len(members) > 1:
            inner.append((str(gid), _inner_view(g, name, members)))
    if inner:
        opts = DotOptions(legend=False, budget=None, max_size=1500.0)
        dots = [view_dot(v, opts, title=f"inside {groups[gid]['name']}") for gid, v in inner]
        try:
            docs = _split_svgs(layout("".join(dots), "svg").decode("utf-8"))
        except GraphprobeError:
            docs = []  # no picture: the members are still listed and searchable
        total = 0
        for (key, v), doc in zip(inner, docs):
            svg = _clean(doc, f"g{key}_")
            if total + len(svg) > MAX_BYTES:
                break
            total += len(svg)
            ig = v.report.model
            groups[key]["svg"] = svg
            groups[key]["nodes"] = [[ig.label[i].split("\n")[0], ig.kind[i], ig.op[i], ig.module[i],
                                     _shape(ig, i), ig.location.get(i), len(v.members.get(i, [i]))]
                                    for i in range(len(ig))]
    return {"groups": groups,
            "member_columns": ["id", "label", "op", "module", "name", "shape", "location"],
            "node_columns": ["label", "kind", "op", "module", "shape", "location", "count"]}
