"""The DOT renderer: a report's graph as Graphviz text, with module boxes, cut edges and a legend.

Data flows top to bottom (parameter -> op -> loss). Each module is a box, losses sit at the
bottom, and what the analyses found is drawn on the nodes and edges it concerns: cut edges in
thick dashed red with the operations that left autograd, detached parameters in dashed red, leaves
rebuilt outside autograd in orange, freed nodes and frozen parameters in grey. The legend explains
only the styles this picture uses. The text is deterministic: the same report gives the same bytes.
"""
from __future__ import annotations

import gc
import textwrap
from dataclasses import dataclass
from typing import Any

from ..errors import GraphprobeError
from ..model.graph import ProbeGraph
from ..locations import short_location
from ..model.report import ReportData
from .collapse import View, make_view

__all__ = ["DotOptions", "to_dot", "view_dot", "quote"]

_RANKDIRS = ("TB", "LR", "BT", "RL")
_FONT = "Helvetica"

# One palette, so the legend and the drawing cannot disagree.
_INK = "#333333"
_EDGE = "#7a7a7a"
_PARAM_FILL, _PARAM_LINE = "#dbe8f5", "#4f7396"
_OP_FILL, _OP_LINE = "#ffffff", "#8c8c8c"
_LOSS_FILL, _LOSS_LINE = "#ffe9a8", "#a07800"
_LEAF_FILL, _LEAF_LINE = "#f2f2f2", "#8c8c8c"
_SHARED_FILL, _SHARED_LINE = "#e7ddf6", "#7d5fb0"
_RED = "#d62728"
_DETACHED_FILL = "#fde8e8"
_ORANGE, _REENTRY_FILL = "#e07b00", "#ffe9cc"
_GREY_FILL, _GREY_LINE, _GREY_TEXT = "#e4e4e4", "#9a9a9a", "#7a7a7a"
_INFO = "#5b7fa6"
_IGNORED = "#b4b4b4"
_CLUSTER_FILLS = ("#fafafa", "#f0f0f0")
_CLUSTER_LINE = "#b4b4b4"

# Node defaults are the plain op's style; a node's statement names only what differs.
_NODE_DEFAULTS: dict[str, str] = {
    "fontname": _FONT, "shape": "box", "style": "filled,rounded", "fillcolor": _OP_FILL,
    "color": _OP_LINE, "fontcolor": _INK, "fontsize": "9", "height": "0.3",
    "margin": "0.08,0.03",
}

# One pass of str.translate for every label: DOT escapes, line breaks, no control characters.
_ESCAPES: dict[int, str] = {c: " " for c in range(32)}
_ESCAPES.update({ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\n"})


@dataclass
class DotOptions:
    """How :func:`to_dot` draws a report.

    Attributes
    ----------
    title : str, optional
        The label at the top; the report's verdict when not given.
    legend : bool
        Draw a legend of the styles this picture uses.
    show_frozen : bool
        Draw frozen parameters (``requires_grad=False``) in their modules.
    rankdir : str
        ``TB`` (top to bottom, the default), ``LR``, ``BT`` or ``RL``.
    budget : int or None
        Visible nodes the picture aims at: above it, what the findings are not about folds by
        module (see :mod:`graphprobe.render.collapse`); None draws every node.
    depth : int, optional
        Collapse to this module depth whatever the size (``1``: top-level modules).
    expand : tuple of str
        Module paths drawn in full detail in a collapsed picture.
    max_size : float or None
        The longest side of the drawing in points (3,000 pt: 4,000 px at 96 dpi); Graphviz
        scales a bigger layout down to it. None leaves the size alone.
    """

    title: str | None = None
    legend: bool = True
    show_frozen: bool = True
    rankdir: str = "TB"
    budget: int | None = 200
    depth: int | None = None
    expand: tuple[str, ...] = ()
    max_size: float | None = 3000.0

    def __post_init__(self) -> None:
        if self.rankdir not in _RANKDIRS:
            raise GraphprobeError(
                f"rankdir must be one of {', '.join(_RANKDIRS)}, not {self.rankdir!r}")


def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string; a newline becomes a centred line break.

    Backslashes and quotes are escaped (so ``\\N`` or ``\\G`` in a name is drawn as written,
    not expanded), other control characters become spaces. ``<`` and ``>`` need no escape inside
    a quoted string: only an unquoted ``<...>`` is an HTML label, and the SVG writer escapes them.

    Examples
    --------
    >>> print(quote('a "b"\\nc\\\\d'))
    "a \\"b\\"\\nc\\\\d"
    """
    if '"' not in text and "\\" not in text:
        if text.isprintable():
            return '"' + text + '"'  # most labels: nothing to escape (checked in C, no translate)
        if "\n" in text and "\r" not in text:
            # A parameter's label and shape: the same bytes as translate, with line breaks only.
            lined = text.replace("\n", "\\n")
            if lined.isprintable():
                return '"' + lined + '"'
    return '"' + text.replace("\r\n", "\n").translate(_ESCAPES) + '"'


def _attrs(pairs: list[tuple[str, str]]) -> str:
    """``[k=v, ...]`` with every value quoted, in the order given."""
    return "[" + ", ".join(f"{k}={quote(v)}" for k, v in pairs) + "]"


def _shape_text(g: ProbeGraph, v: int) -> str | None:
    m = g.meta.get(v)
    if m is None:
        return None
    return "×".join(str(s) for s in m.shape) if m.shape else "scalar"


def _title_text(title: str) -> str:
    """The verdict split at its clauses and wrapped, so a long one stays readable."""
    lines: list[str] = []
    for part in title.split("\n"):
        head, sep, rest = part.partition(": ")
        clauses = ([head + sep.rstrip()] + rest.split("; ")) if sep and "; " in rest else [part]
        for c in clauses:
            lines += textwrap.wrap(c, 90) or [""]
    return "\n".join(lines)


class _Cluster:
    """One module box: its path, its own nodes, its child boxes."""

    __slots__ = ("idx", "path", "nodes", "children", "parent")

    def __init__(self, idx: int, path: str, parent: _Cluster | None) -> None:
        self.idx = idx
        self.path = path
        self.nodes: list[int] = []
        self.children: list[_Cluster] = []
        self.parent = parent


def _module_tree(g: ProbeGraph, visible: list[bool], rank: list[int] | None = None
                 ) -> tuple[_Cluster, list[int]]:
    """Module boxes nested by path prefix, plus the visible nodes that belong to no module.

    A prefix gets a box of its own only when it holds nodes or two or more sub-boxes, so
    ``encoder.layers.0.attn`` alone does not draw four nested empty boxes. With ``rank`` (see
    :func:`_loss_order`), boxes and loose nodes come in the order of the first loss they feed.
    Complexity: O(V + M) with the box of each distinct module path found once.
    """
    root = _Cluster(-1, "", None)
    by_path: dict[str, _Cluster] = {}
    loose: list[int] = []
    # Only modules that hold parameters (or contain ones that do) get a box: a loss function or
    # an activation module would otherwise pull unrelated nodes (two losses' MSE ops) together.
    boxed: set[str] = set()
    for v in g.nodes_of_kind("param", "module"):
        m = g.module[v]
        if m and m not in boxed:
            parts = m.split(".")
            for i in range(1, len(parts) + 1):
                boxed.add(".".join(parts[:i]))
    box_memo: dict[str, str | None] = {}

    def box_of(mod: str) -> str | None:
        got = box_memo.get(mod, "")
        if got != "":
            return got
        m = mod
        while m and m not in boxed:
            m = m.rpartition(".")[0]
        box_memo[mod] = m or None
        return m or None

    count = 0
    order: range | list[int]
    if rank is None or not rank or min(rank) == max(rank):
        order = range(len(g.kind))
    else:
        order = sorted(range(len(g.kind)), key=rank.__getitem__)
    modules, kinds = g.module, g.kind
    # A node's module path -> its box (None: loose), so the loop below, once per node, does one
    # lookup; a box is made when the first node in it is met, as the boxes are numbered.
    box_for: dict[str, _Cluster | None] = {}
    for v in order:
        if not visible[v]:
            continue
        raw = modules[v]
        if not raw or kinds[v] == "loss":
            loose.append(v)
            continue
        c = box_for.get(raw, root)
        if c is not root:
            if c is None:
                loose.append(v)
            else:
                c.nodes.append(v)
            continue
        mod = box_of(raw)
        if not mod:
            box_for[raw] = None
            loose.append(v)
            continue
        c = by_path.get(mod)
        if c is None:
            parts = mod.split(".")
            parent = root
            for k in range(1, len(parts) + 1):
                p = ".".join(parts[:k])
                c = by_path.get(p)
                if c is None:
                    c = _Cluster(count, p, parent)
                    count += 1
                    by_path[p] = c
                    parent.children.append(c)
                parent = c
            assert c is not None
        box_for[raw] = c
        c.nodes.append(v)
    # Fold away boxes with no nodes of their own and a single child (children before parents).
    for c in sorted(by_path.values(), key=lambda c: -c.idx):
        if not c.nodes and len(c.children) == 1 and c.parent is not None:
            child = c.children[0]
            siblings = c.parent.children
            siblings[siblings.index(c)] = child
            child.parent = c.parent
    return root, loose


def _findings(report: ReportData, g: ProbeGraph) -> dict[str, Any]:
    """Per-node notes from the report's findings lists, keyed by node id."""
    n = len(g.kind)
    shared_by: dict[int, list[str]] = {}
    for s in report.shared:
        for v in s.get("nodes", []):
            if 0 <= v < n and v not in shared_by:
                shared_by[v] = list(s.get("losses", []))
    unreached: dict[int, dict[str, Any]] = {}
    reentry: dict[int, dict[str, Any]] = {}
    for d in report.detached:
        v = d.get("node")
        if v is None or not 0 <= v < n:
            continue
        (reentry if d.get("kind") == "reentry_leaf" else unreached).setdefault(v, d)
    freed: dict[int, dict[str, Any]] = {}
    for f in report.freed:
        v = f.get("node")
        if v is not None and 0 <= v < n:
            freed.setdefault(v, f)
    for v in sorted(g.freed):
        freed.setdefault(v, {})
    frozen = set(g.frozen)
    for f in report.frozen:
        v = f.get("node")
        if v is not None and 0 <= v < n:
            frozen.add(v)
    feeds_loss: dict[int, list[str]] = {}
    # The ops right above each loss, in one pass over the edges (a full producers() index would
    # cost more than the rest of a picture of every node).
    loss_ids = {lid for lid in g.losses if 0 <= lid < n}
    above: dict[int, list[int]] = {}
    for a, b in zip(g.src, g.dst):
        if b in loss_ids:
            above.setdefault(b, []).append(a)
    for lid in g.losses:
        for p in above.get(lid, ()):
            feeds_loss.setdefault(p, []).append(g.label[lid])
    failed = {str(e.get("loss")) for e in report.errors if e.get("loss")}
    # Nodes the fast path in _node_line must leave to the general one.
    plain_skip = set(shared_by) | set(unreached) | set(reentry) | set(freed) | frozen
    return {"shared": shared_by, "unreached": unreached, "reentry": reentry, "freed": freed,
            "frozen": frozen, "feeds_loss": feeds_loss, "failed": failed, "plain_skip": plain_skip,
            "quoted": {}, "shapes": {}}


def _node_line(g: ProbeGraph, v: int, notes: dict[str, Any], used: set[str]) -> str:
    """The DOT statement for node ``v``; records in ``used`` which legend entries it needs."""
    kind = g.kind[v]
    if kind == "op" and v not in notes["plain_skip"]:
        # Most nodes are plain ops with no finding: their statement is just label and id (the
        # node defaults say the rest, its id included). Same bytes as the general path below.
        name = g.name[v]
        if not name or name in notes["feeds_loss"].get(v, ()):
            # A few dozen op names make every label: quote each once per picture.
            quoted = notes["quoted"]
            q = quoted.get(g.label[v])
            if q is None:
                q = quoted[g.label[v]] = quote(g.label[v])
            return f'n{v} [label={q}];'
        return f'n{v} [label={quote(g.label[v] + chr(10) + "= " + name)}];'

    if kind == "param" and v not in notes["plain_skip"]:
        # A parameter no finding is about: the general path's bytes, without its lists.
        m = g.meta.get(v)
        shape: str | None = None
        if m is not None:  # _shape_text(g, v), once per distinct shape
            shapes = notes["shapes"]
            shape = shapes.get(m.shape)
            if shape is None:
                shape = shapes[m.shape] = _shape_text(g, v)
        label = g.label[v] + ("\n" + shape if shape else "")
        param_tip = f"param {g.label[v]}" + (f": {shape} {m.dtype} on {m.device}" if m else "")
        used.add("param")
        return (f'n{v} [fontsize="10", margin="0.11,0.055", label={quote(label)}, style="filled", '
                f'fillcolor="{_PARAM_FILL}", color="{_PARAM_LINE}", tooltip={quote(param_tip)}];')
    label = g.label[v]
    lines: list[str] = []
    tip: list[str] = []
    attrs: list[tuple[str, str]] = []
    style = ["filled"]
    fill, line, text = _OP_FILL, _OP_LINE, _INK
    base = kind  # the legend entry for the plain style, if no finding restyles the node
    if kind == "loss":
        lines.append(label)
        attrs += [("penwidth", "2"), ("fontsize", "13"), ("margin", "0.2,0.08")]
        style += ["rounded", "bold"]
        fill, line = _LOSS_FILL, _LOSS_LINE
        tip.append(f"loss {label}")
        if label in notes["failed"]:
            used.add("failed")
            lines.append("backward failed")
            line = _RED
            text = "#a01515"
        if v in g.location:
            tip.append(f"backward at {g.location[v]}")
    elif kind == "module":
        lines.append(label)
        attrs += [("shape", "box3d"), ("fontsize", "10"), ("margin", "0.12,0.06")]
        fill, line = _PARAM_FILL if "param" in label else _OP_FILL, _CLUSTER_LINE
        tip.append(f"folded module {g.name[v]}: {label.splitlines()[-1]}")
        info = notes.get("groups", {}).get(v) or {}
        if info.get("calls", 1) > 1:
            tip.append(f"its module ran {info['calls']} times (one block for all of them)")
        starved = info.get("starved", 0)
        if starved:
            # A folded detector whose parameters get no gradient: say so on the block itself.
            used.add("unreached")
            lines.append(f"{starved} of its params: no gradient")
            fill, line, text = _DETACHED_FILL, _RED, "#a01515"
            style.append("dashed")
            attrs.append(("penwidth", "2.2"))
            tip.append(f"{starved} parameter{'s' if starved != 1 else ''} in it get no gradient")
    elif kind == "op":
        lines.append(label)
        # "= loss1" on the op that makes loss1 says nothing the loss node does not.
        if g.name[v] and g.name[v] not in notes["feeds_loss"].get(v, ()):
            lines.append(f"= {g.name[v]}")
        style.append("rounded")
    else:
        name = label
        if kind == "reentry_leaf":
            d = notes["reentry"].get(v)
            name = (d or {}).get("name") or g.name[v] or label
        lines.append(name)
        shape = _shape_text(g, v)
        if shape:
            lines.append(shape)
        attrs += [("fontsize", "10"), ("margin", "0.11,0.055")]
        if kind == "param":
            fill, line = _PARAM_FILL, _PARAM_LINE
        else:
            fill, line = _LEAF_FILL, _LEAF_LINE
            style.append("rounded")
        m = g.meta.get(v)
        tip.append(f"{kind} {name}" + (f": {shape} {m.dtype} on {m.device}" if m else ""))
    penwidth = None
    shared = notes["shared"].get(v)
    if shared is not None:
        used.add("shared")
        fill, line = _SHARED_FILL, _SHARED_LINE
        tip.append("shared by " + ", ".join(shared))
    if v in notes["frozen"]:
        used.add("frozen")
        lines.append("frozen")
        fill, line, text = "#ffffff", _GREY_LINE, _GREY_TEXT
        style.append("dotted")
        tip.append("frozen: requires_grad=False")
    d = notes["unreached"].get(v)
    if d is not None and d.get("severity") == "info":
        used.add("unused")
        lines.append("unused")
        fill, line, text = "#ffffff", _GREY_LINE, _GREY_TEXT
        style.append("dashed")
        tip += [x for x in (d.get("reason"), d.get("fix")) if x]
    elif d is not None:
        used.add("unreached")
        lines.append("no gradient")
        opts = d.get("optimizers") or g.optimizers.get(v) or []
        if opts:
            lines.append("held by " + ", ".join(opts))
        fill, line, text = _DETACHED_FILL, _RED, "#a01515"
        style.append("dashed")
        penwidth = "2.2"
        tip += [x for x in (d.get("reason"), d.get("fix")) if x]
    d = notes["reentry"].get(v)
    if d is not None or kind == "reentry_leaf":
        used.add("reentry")
        lines.append("leaf rebuilt outside autograd")
        fill, line, text = _REENTRY_FILL, _ORANGE, "#8a4a00"
        penwidth = "2.2"
        tip += [x for x in ((d or {}).get("reason"), (d or {}).get("fix")) if x]
    f = notes["freed"].get(v)
    if f is not None:
        used.add("freed")
        lines.append("freed")
        fill, text = _GREY_FILL, _GREY_TEXT
        if shared is None:
            line = _GREY_LINE
        tip.append("freed by an earlier backward" + (
            " (needed by " + ", ".join(f["losses"]) + ")" if f.get("losses") else ""))
        tip += [x for x in (f.get("reason"), f.get("fix")) if x]
    if base in ("loss", "param", "leaf") and fill in (_LOSS_FILL, _PARAM_FILL, _LEAF_FILL):
        used.add(base)
    attrs += [("label", "\n".join(lines)), ("style", ",".join(style)), ("fillcolor", fill),
              ("color", line), ("fontcolor", text)]
    if penwidth is not None:
        attrs.append(("penwidth", penwidth))
    if tip:
        attrs.append(("tooltip", "\n".join(tip)))
    # Leave out what the node defaults already say: most nodes are plain ops.
    return f"n{v} {_attrs([(k, x) for k, x in attrs if _NODE_DEFAULTS.get(k) != x])};"


def _node_lines(g: ProbeGraph, nodes: list[int], notes: dict[str, Any], used: set[str], pad: str,
                out: list[str]) -> None:
    """Append the statements of ``nodes`` to ``out``: :func:`_node_line`, with its most common
    case (an unnamed op no finding is about) inlined, since a picture of every node is mostly
    that. Complexity: O(len(nodes))."""
    kinds, labels, names, skip, quoted = g.kind, g.label, g.name, notes["plain_skip"], notes["quoted"]
    for v in nodes:
        if kinds[v] == "op" and not names[v] and v not in skip:
            label = labels[v]
            q = quoted.get(label)
            if q is None:
                q = quoted[label] = quote(label)
            out.append(f"{pad}n{v} [label={q}];")
        else:
            out.append(pad + _node_line(g, v, notes, used))


def _cut_line(s: int, d: int, c: int, cuts: list[dict[str, Any]], used: set[str],
              edge_id: str = "", merged: list[int] | None = None) -> str:
    """The DOT statement for the cut edge ``s -> d`` (index ``c`` into ``cuts``).

    The SVG element gets ``id=edge_id`` (``cut{c}``, then ``cut{c}_1``... when one cut has several
    edges) and ``class="cut cut{c}"``, so the HTML report can find and highlight it.
    """
    cut = cuts[c] if 0 <= c < len(cuts) else {}
    chain = [str(x.get("op")) for x in cut.get("chain") or [] if x.get("op")]
    head = " → ".join(chain) if chain else f"cut ({cut.get('kind') or 'outside autograd'})"
    where = str(cut.get("location") or "")
    # The file's name is enough on the picture; the tooltip keeps the whole path.
    label = head + ("\n" + short_location(where) if where else "")
    if merged and len(merged) > 1:
        label += f"\n({len(merged)} cuts at this line)"
    if not cut.get("ignored"):
        label += "\nno gradient flows back"
    if "_" in edge_id:
        label = ""  # a cut out of a no_grad block has an edge per parameter: label the first only
    tip = [f"CUT: {head}" + (f" at {where}" if where else "")
           + ": no gradient flows back along this edge"]
    tip += [x for x in (cut.get("reason"), cut.get("fix")) if x]
    for b in cut.get("blocked") or []:
        tip.append(f"{b.get('loss')} cannot reach {', '.join(b.get('params') or [])}")
    if cut.get("ignored"):
        used.add("cut_ignored")
        attrs = [("color", _IGNORED), ("fontcolor", _IGNORED), ("style", "dotted"),
                 ("penwidth", "1"), ("fontsize", "9"), ("label", label + "\n(ignored)")]
    elif cut.get("severity") == "info":
        used.add("cut_info")
        attrs = [("color", _INFO), ("fontcolor", _INFO), ("style", "dashed"),
                 ("penwidth", "1.6"), ("fontsize", "10"), ("label", label)]
    else:
        used.add("cut")
        attrs = [("color", _RED), ("fontcolor", _RED), ("style", "dashed"), ("penwidth", "2.5"),
                 ("arrowsize", "1.1"), ("fontsize", "13"), ("label", label)]
    attrs += [("tooltip", "\n".join(tip)), ("labeltooltip", "\n".join(tip)),
              ("id", edge_id or f"cut{c}"),
              ("class", "cut " + " ".join(f"cut{i}" for i in (merged or [c])))]
    return f"n{s} -> n{d} {_attrs(attrs)};"


def _html(text: str) -> str:
    """``text`` escaped for a Graphviz HTML-like label."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\n", "<BR/>"))


def _legend(used: set[str], shared_sets: list[str]) -> list[str]:
    """The legend: a small cluster holding one table, a row per style in ``used``, fixed order."""
    rows: list[str] = []

    def box(key: str, text: str, fill: str, line: str, border: int = 1, style: str = "") -> None:
        if key in used:
            st = f' STYLE="{style}"' if style else ""
            rows.append(f'<TR><TD BORDER="{border}" COLOR="{line}" BGCOLOR="{fill}"{st} WIDTH="30" '
                        f'HEIGHT="14"></TD><TD ALIGN="LEFT">{_html(text)}</TD></TR>')

    def line(key: str, sample: str, text: str, color: str) -> None:
        if key in used:
            rows.append(f'<TR><TD><FONT COLOR="{color}" POINT-SIZE="12"><B>{_html(sample)}</B>'
                        f'</FONT></TD><TD ALIGN="LEFT"><FONT COLOR="{color}">{_html(text)}</FONT>'
                        "</TD></TR>")

    line("cut", "- - ->", "cut: data left autograd here", _RED)
    line("cut_info", "- - ->", "cut (info only)", _INFO)
    line("cut_ignored", ". . . >", "cut (ignored)", _IGNORED)
    box("unreached", "no gradient: no loss reaches it", _DETACHED_FILL, _RED, 2, "dashed")
    box("reentry", "leaf rebuilt outside autograd", _REENTRY_FILL, _ORANGE, 2)
    box("freed", "freed by an earlier backward", _GREY_FILL, _GREY_LINE)
    box("shared", "shared by " + "; ".join(shared_sets), _SHARED_FILL, _SHARED_LINE)
    box("frozen", "frozen (requires_grad=False)", "#ffffff", _GREY_LINE, 1, "dotted")
    box("unused", "unused: no loss, no optimizer", "#ffffff", _GREY_LINE, 1, "dashed")
    box("loss", "loss", _LOSS_FILL, _LOSS_LINE, 2, "rounded")
    box("failed", "loss whose backward failed", _LOSS_FILL, _RED, 2, "rounded")
    box("param", "parameter", _PARAM_FILL, _PARAM_LINE)
    box("leaf", "input leaf", _LEAF_FILL, _LEAF_LINE, 1, "rounded")
    if not rows:
        return []
    table = ('<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="3" CELLPADDING="1">'
             + "".join(rows) + "</TABLE>>")
    return ["  subgraph cluster_legend {",
            "    graph " + _attrs([("label", "legend"), ("fontsize", "10"),
                                   ("fontcolor", _GREY_TEXT), ("style", "rounded"),
                                   ("color", "#cccccc"), ("labeljust", "l"),
                                   ("tooltip", "legend")]) + ";",
            f'    legend [shape="plain", fontsize="9", tooltip="legend", label={table}];',
            "  }"]


def to_dot(report: ReportData, options: DotOptions | None = None) -> str:
    """The report's graph as Graphviz DOT text: its view (:func:`make_view`), drawn.

    Parameters
    ----------
    report : ReportData
        What :func:`graphprobe.probe` found; the graph is ``report.model``.
    options : DotOptions, optional
        Title, legend, frozen parameters, direction, budget, depth, expand.

    Returns
    -------
    str
        A ``digraph``: one cluster per module (nested by path), inputs at the top and losses at
        the bottom, cut edges in thick dashed red labelled with the operations that left
        autograd and where, and a legend. Node ``i`` of the view is named ``n{i}``. The same
        report gives the same text.

    Notes
    -----
    Complexity: O(V + E + M log M) for V nodes, E edges and M modules; no recursion.

    Examples
    --------
    >>> from graphprobe.model.graph import ProbeGraph
    >>> from graphprobe.report import Report
    >>> g = ProbeGraph()
    >>> w = g.add_node("param", "w"); loss = g.add_node("loss", "loss")
    >>> g.add_edge(w, loss); g.losses.append(loss)
    >>> "n0 -> n1" in to_dot(Report(g), DotOptions(title="example"))
    True
    """
    opts = options if options is not None else DotOptions()
    return view_dot(make_view(report, opts.depth, tuple(opts.expand), opts.budget), opts)


def _loss_order(g: ProbeGraph) -> list[int]:
    """For each node, the index of the first loss (in the order given) that reaches it.

    Drawing the first loss's part first puts it on the left, so every picture reads the same
    way: inputs at the top, the first loss on the left. Complexity: O(V + E), iterative.
    """
    n = len(g.kind)
    big = len(g.losses)
    if big <= 1:
        return [0] * n  # one loss: the walk's order is already the reading order
    order = [big] * n
    producers = g.producers()
    for i, lid in enumerate(g.losses):
        if not 0 <= lid < n or order[lid] <= i:
            continue
        order[lid] = i
        stack = [lid]
        while stack:
            v = stack.pop()
            for p in producers[v]:
                if order[p] > i:
                    order[p] = i
                    stack.append(p)
    return order


def view_dot(view: View, options: DotOptions | None = None, title: str | None = None) -> str:
    """A :class:`~graphprobe.render.collapse.View` as DOT text (see :func:`to_dot`).

    ``title`` overrides ``options.title`` and the verdict (the image renderer uses it to say that
    it fell back to a coarser view).
    """
    # The writer makes thousands of small lists and no cycles: a collection of a big heap (the
    # user's model and graph) in the middle of it costs more than all of it, as in the probe.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _view_dot(view, options, title)
    finally:
        if gc_was_on:
            gc.enable()


def _view_dot(view: View, options: DotOptions | None, title: str | None) -> str:
    opts = options if options is not None else DotOptions()
    report = view.report
    if title is None:
        title = opts.title if opts.title is not None else view.original.verdict()
        if view.note:
            title += "\n(" + view.note + ")"
    g = report.model
    n = len(g.kind)
    notes = _findings(report, g)
    notes["groups"] = view.groups
    visible = [True] * n
    if not opts.show_frozen:
        for v in notes["frozen"]:
            visible[v] = False
    used: set[str] = set()
    rank = _loss_order(g)

    graph_attrs = [
        ("label", _title_text(title)), ("labelloc", "t"), ("labeljust", "c"), ("fontname", _FONT),
        ("fontsize", "15"), ("fontcolor", _INK), ("rankdir", opts.rankdir), ("newrank", "true"),
        ("nodesep", "0.3"), ("ranksep", "0.45"), ("bgcolor", "white"), ("pad", "0.3"),
        ("tooltip", title)]
    if opts.max_size:
        inches = f"{opts.max_size / 72:.2f}"
        graph_attrs.append(("size", f"{inches},{inches}"))
    out: list[str] = ["digraph graphprobe {"]
    out.append("  graph " + _attrs(graph_attrs) + ";")
    # id="\N": every node's SVG id is its DOT name (n12), without an id on each statement.
    out.append("  node " + _attrs(list(_NODE_DEFAULTS.items()))[:-1] + ', id="\\N"];')
    out.append("  edge " + _attrs([("fontname", _FONT), ("fontsize", "10"), ("color", _EDGE),
                                   ("arrowsize", "0.7")]) + ";")

    # Module boxes, nested, written with an explicit stack, the first loss's part first.
    root, loose = _module_tree(g, visible, rank)
    stack: list[tuple[_Cluster, int]] = [(c, 1) for c in reversed(root.children)]
    while stack:
        c, depth = stack.pop()
        pad = "  " * depth
        if depth < 0:  # closing marker
            out.append("  " * -depth + "}")
            continue
        out.append(f"{pad}subgraph cluster_{c.idx} {{")
        # The same bytes as _attrs over these pairs; only the path is quoted (170 boxes in a
        # 24-layer transformer).
        out.append(f'{pad}  graph [label={quote(c.path)}, fontsize="11", fontcolor="#555555", '
                   f'style="rounded,filled", fillcolor="{_CLUSTER_FILLS[(depth - 1) % 2]}", '
                   f'color="{_CLUSTER_LINE}", labeljust="l", tooltip={quote("module " + c.path)}];')
        _node_lines(g, c.nodes, notes, used, pad + "  ", out)
        stack.append((c, -depth))
        for ch in reversed(c.children):
            stack.append((ch, depth + 1))
    _node_lines(g, loose, notes, used, "  ", out)
    losses = [v for v in g.losses if 0 <= v < n and visible[v]]
    if losses:
        # Invisible edges along the bottom row keep the losses in the order given, left to right.
        chain = "".join(f" n{a} -> n{b} [style=\"invis\"];" for a, b in zip(losses, losses[1:]))
        out.append("  { rank=sink; " + " ".join(f"n{v};" for v in losses) + chain + " }")

    if all(visible):
        out += [f"  n{s} -> n{d};" for s, d in zip(g.src, g.dst)]
    else:
        out += [f"  n{s} -> n{d};" for s, d in zip(g.src, g.dst) if visible[s] and visible[d]]
    # Cut edges last, so they are drawn over the data edges.
    seen_cuts: dict[int, int] = {}
    for s, d, cut in g.cut_edges:
        if 0 <= s < n and 0 <= d < n and visible[s] and visible[d]:
            k = seen_cuts[cut] = seen_cuts.get(cut, -1) + 1
            edge_id = f"cut{cut}" + (f"_{k}" if k else "")
            out.append("  " + _cut_line(s, d, cut, report.cuts, used, edge_id,
                                        view.cut_merge.get(cut)))

    if opts.legend:
        shared_sets: list[str] = []
        for sh in report.shared:
            text = " + ".join(sh.get("losses", []))
            if text and text not in shared_sets:
                shared_sets.append(text)
        if len(shared_sets) > 3:
            shared_sets = shared_sets[:3] + [f"{len(shared_sets) - 3} more"]
        out += _legend(used, shared_sets)
    out.append("}")
    return "\n".join(out) + "\n"
