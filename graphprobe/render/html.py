"""The HTML report: one self-contained file with the graph, the findings and a node inspector.

The page loads nothing from the network, no fonts, scripts, styles or images: the SVG is inline,
the style and the script are inline, and a Content-Security-Policy forbids every other load, so
it opens the same on an offline cluster as on a laptop. It holds:

- the graph (:meth:`Report.to_svg`), with pan (drag), zoom (wheel, buttons, ``+`` ``-`` keys)
  and "fit" (``0`` key), written in plain inline JavaScript;
- a side panel: the verdict, the findings (cuts, detached parameters, freed nodes, errors), each
  with its severity, location, reason and fix; clicking one highlights its cut edge or its nodes
  (CSS class ``gp-highlight``) and pans them into view;
- an inspector: clicking a graph node shows its op, module, kind, shape, dtype, device, source
  location, the losses whose backward reaches it and the findings about it;
- the report's JSON contract (:meth:`Report.to_dict`) in ``<script type="application/json"
  id="gp-data">``, with ``<``, ``>`` and ``&`` written as ``\\u003c``, ``\\u003e``, ``\\u0026`` so
  no text in it can close the script element.

The DOT renderer names node ``i`` ``n{i}`` and gives cut edge ``c`` the id ``cut{c}`` and the
class ``cut{c}``; the script finds the SVG elements by those.
"""
from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any

from ..locations import short_location

if TYPE_CHECKING:
    from ..model.report import ReportData

__all__ = ["render_html"]

_SEV_ORDER = {"error": 0, "warning": 1, "info": 2}

# No load of any kind but what is inline in the page itself.
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")

# A tiny inline icon, so the browser does not go looking for /favicon.ico.
_FAVICON = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAQUlEQVR42mNgo"
            "BbwL572HxlTpJlkQ4aBAdgMuaauAcZkxwrMAIoNoUoaARn0YAUDCibJAHTNJBsyDAzAZgjVcjEAvvuqvcLxQFkAAAA"
            "ASUVORK5CYII=")


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``</script>``, no ``<!--``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


_SVG_OPEN = re.compile(r"<svg\b[^>]*>", re.S)


def _inline_svg(svg: str) -> str:
    """Graphviz's SVG document as an element to put in HTML.

    The XML prolog, the DOCTYPE (it names a DTD by URL) and the comments go; the namespace
    declarations go too (the HTML parser puts ``<svg>`` and ``xlink:`` in their namespaces by
    itself), and so do the fixed width and height, so the page can size and zoom it.
    ``<title>`` children would show the DOT names (``n12``) as tooltips; they go as well.
    """
    start = svg.find("<svg")
    if start < 0:
        return '<svg viewBox="0 0 10 10"></svg>'
    body = svg[start:]
    body = re.sub(r"<!--.*?-->", "", body, flags=re.S)
    m = _SVG_OPEN.match(body)
    assert m is not None
    tag = m.group(0)
    tag = re.sub(r'\s(?:xmlns(?::\w+)?|width|height)="[^"]*"', "", tag)
    tag = tag.replace("<svg", '<svg id="gp-svg" preserveAspectRatio="xMidYMid meet"', 1)
    body = tag + body[m.end():]
    body = re.sub(r"<title>[^<]*</title>\n?", "", body)
    return body.strip()


def _short(loc: str | None) -> str:
    """``cor.py:26`` (a notebook cell: ``In [3], line 4``); the JSON keeps the full path."""
    if not loc:
        return ""
    return short_location(str(loc))


def _badge(sev: str, text: str | None = None) -> str:
    return f'<span class="gp-badge gp-sev-{_e(sev)}">{_e(text or sev)}</span>'


def _finding_items(report: "ReportData") -> list[tuple[int, str]]:
    """``(sort key, <li> html)`` for each finding, in the order the page lists them."""
    items: list[tuple[tuple[int, ...], str]] = []
    # Root cause first: each cause's own finding, then what it explains, causes in their order.
    causes = list(getattr(report, "causes", None) or [])
    cause_of: dict[tuple[str, int], int] = {}
    for ci, cause in enumerate(causes):
        cause_of[tuple(cause.finding)] = ci
    lists = {0: "cuts", 1: "detached", 2: "freed", 3: "errors"}

    def li(sev: str, kind: str, attrs: dict[str, str], title: str, body: list[str],
           order: tuple[int, int], extra_badges: str = "", muted: bool = False) -> None:
        data = "".join(f' data-{k}="{_e(v)}"' for k, v in attrs.items())
        cls = "gp-finding" + (" gp-muted" if muted else "")
        key = (lists.get(order[0], ""), order[1])
        own = cause_of.get(key)
        finding = getattr(report, key[0], [])[order[1]] if key[0] else {}
        by = finding.get("caused_by") if own is None else None
        if by is not None and 0 <= by < len(causes) and causes[by].finding != key:
            body = body + [row("caused by", _e(causes[by].title))]
        rank = own if own is not None else (by if by is not None else len(causes))
        head = (f'<div class="gp-f-head">{_badge(sev)}{extra_badges}'
                f'<span class="gp-f-title">{title}</span></div>')
        items.append(((1 if muted else 0, rank, 0 if own is not None else 1, _SEV_ORDER.get(sev, 3),
                       order[0] * 100000 + order[1]),
                      f'<li class="{cls}" tabindex="0" role="button" data-kind="{_e(kind)}" '
                      f'data-severity="{_e(sev)}"{data}>{head}{"".join(body)}</li>'))

    def row(label: str, value: str, cls: str = "") -> str:
        return (f'<div class="gp-f-row{(" " + cls) if cls else ""}"><span class="gp-f-label">'
                f"{_e(label)}</span><span>{value}</span></div>")

    for i, c in enumerate(report.cuts):
        sev = c.get("severity", "error")
        src, dst = c.get("from") or {}, c.get("to") or {}
        chain = [str(x.get("op")) for x in c.get("chain") or [] if x.get("op")]
        where = " → ".join(x for x in (src.get("module"), dst.get("module")) if x)
        title = f'{_e(c.get("kind") or "data")} cut' + (f" · {_e(where)}" if where else "")
        body: list[str] = []
        if chain:
            body.append(f'<div class="gp-chain">{_e(" → ".join(chain))}</div>')
        loc = _short(c.get("location"))
        if loc:
            body.append(row("at", f'<code>{_e(loc)}</code>'))
        if c.get("line"):
            body.append(f'<pre class="gp-pre">{_e(c["line"])}</pre>')
        if c.get("exit_location"):
            body.append(row("inside", f'<code>{_e(_short(c["exit_location"]))}</code>'))
        own = cause_of.get(("cuts", i))
        for st in (causes[own].starves if own is not None else []):
            held = f" held by {', '.join(st.optimizers)}" if st.optimizers else ""
            body.append(row("starves", f"<b>{_e(st.module)}</b>: {len(st.params)} parameter"
                                       f"{'s' if len(st.params) != 1 else ''}{_e(held)}"))
        re_loc = _short(c.get("reentry_location"))
        if re_loc and re_loc != loc:
            body.append(row("re-enters", f'<code>{_e(re_loc)}</code>'))
        for b in c.get("blocked") or []:
            ps = list(b.get("params") or [])
            shown = ", ".join(ps[:6]) + (f" … and {len(ps) - 6} more" if len(ps) > 6 else "")
            body.append(row("blocks", f'<b>{_e(b.get("loss"))}</b> cannot reach {_e(shown)}'))
        body += _why_and_fix(c)
        nodes = [n for n in (src.get("node"), dst.get("node")) if isinstance(n, int)]
        extra = f'<span class="gp-tag">{int(c["count"])}×</span>' if (c.get("count") or 1) > 1 else ""
        if c.get("guess"):
            extra += '<span class="gp-tag">guess</span>'
        if c.get("ignored"):
            extra += '<span class="gp-tag">ignored</span>'
        li(sev, "cut", {"cut": str(i), "nodes": " ".join(map(str, nodes))}, title, body, (0, i),
           extra, muted=bool(c.get("ignored")))
    for i, d in enumerate(report.detached):
        sev = d.get("severity", "warning")
        what = "leaf rebuilt outside autograd" if d.get("kind") == "reentry_leaf" else "no gradient"
        title = f'{_e(what)} · <code>{_e(d.get("name"))}</code>'
        body = []
        if d.get("module"):
            body.append(row("module", f'<code>{_e(d["module"])}</code>'))
        if d.get("optimizers"):
            body.append(row("held by", _e(", ".join(d["optimizers"]))))
        body += _why_and_fix(d)
        node = d.get("node")
        li(sev, "detached", {"nodes": str(node) if isinstance(node, int) else "",
                             "name": str(d.get("name") or "")}, title, body, (1, i))
    for i, f in enumerate(report.freed):
        sev = f.get("severity", "error")
        title = f'freed by an earlier backward · <code>{_e(f.get("op"))}</code>'
        body = []
        if f.get("module"):
            body.append(row("module", f'<code>{_e(f["module"])}</code>'))
        if f.get("losses"):
            body.append(row("needed by", _e(", ".join(f["losses"]))))
        body += _why_and_fix(f)
        node = f.get("node")
        li(sev, "freed", {"nodes": str(node) if isinstance(node, int) else ""}, title, body, (2, i))
    for i, err in enumerate(report.errors):
        sev = err.get("severity", "error")
        msg = str(err.get("message") or "")
        head, _, rest = msg.partition("\n")
        title = _e(err.get("kind") or "error")
        body = [f'<p class="gp-reason"><b>{_e(head)}</b></p>']
        if rest.strip():
            body.append(f'<pre class="gp-pre">{_e(rest.strip())}</pre>')
        if err.get("location"):
            body.append(row("at", f'<code>{_e(_short(err["location"]))}</code>'))
        if err.get("fix"):
            body.append(f'<p class="gp-fix"><b>Fix</b> {_e(err["fix"])}</p>')
        node = err.get("node")
        li(sev, "error", {"nodes": str(node) if isinstance(node, int) else ""}, title, body, (3, i))
    items.sort(key=lambda t: t[0])
    return [(k, h) for k, (_, h) in enumerate(items)]


def _reaches_table(report: "ReportData") -> str:
    params = [p for p in report.params if not p.get("frozen")]
    losses = [str(l.get("name")) for l in report.losses]
    if not params or not losses or len(params) > 60 or len(losses) > 8:
        return ""
    head = "".join(f"<th>{_e(l)}</th>" for l in losses)
    rows = []
    for p in params:
        reached = set(p.get("reached_by") or [])
        cells = "".join('<td class="gp-yes">✓</td>' if l in reached else '<td class="gp-no">·</td>'
                        for l in losses)
        node = p.get("node")
        data = f' data-node="{node}"' if isinstance(node, int) else ""
        opt = ", ".join(p.get("optimizers") or [])
        rows.append(f'<tr class="gp-param-row"{data}><td class="gp-pname" title="{_e(opt)}">'
                    f'<code>{_e(p.get("name"))}</code></td>{cells}</tr>')
    return ('<details class="gp-section" open><summary>Reaches <span class="gp-dim">which loss '
            'sends gradient to which parameter</span></summary><table class="gp-reaches"><thead>'
            f'<tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></details>')


def _why_and_fix(finding: dict[str, Any]) -> list[str]:
    """A finding's reason and fix as the panel's two paragraphs (either may be missing)."""
    out = []
    if finding.get("reason"):
        out.append(f'<p class="gp-reason">{_e(finding["reason"])}</p>')
    if finding.get("fix"):
        out.append(f'<p class="gp-fix"><b>Fix</b> {_e(finding["fix"])}</p>')
    return out


def _asset(name: str) -> str:
    """A page asset shipped as package data (``graphprobe/render/assets``)."""
    from importlib.resources import files

    return (files("graphprobe.render") / "assets" / name).read_text(encoding="utf-8")


def render_html(report: "ReportData", options: Any = None, **dot_options: Any) -> str:
    """The report as one self-contained HTML page (see the module docstring).

    Parameters
    ----------
    report : ReportData
        What :func:`graphprobe.probe` found.
    options : DotOptions, optional
        How to draw the graph; ``dot_options`` (``title``, ``rankdir`` ...) override its fields.

    Returns
    -------
    str
        The whole page. It names no URL to load: open it from disk, offline.

    Notes
    -----
    The picture is the report's view (:func:`~graphprobe.render.collapse.make_view`), laid out
    once; the page's JSON is that view's report, so every id in it is a drawn SVG id. What the
    view folds comes as detail (:mod:`graphprobe.render.detail`), parsed only when asked for: the
    page grows with what is drawn, not with the graph.
    """
    from .collapse import make_view
    from .detail import folded_detail
    from .dot import DotOptions
    from .image import render_view

    fields = dict(vars(options)) if options is not None else {}
    fields.update(dot_options)
    if fields.get("title") is None:
        fields["title"] = ""  # the side panel shows the verdict; the picture need not repeat it
    opts = DotOptions(**fields)
    view = make_view(report, opts.depth, tuple(opts.expand), opts.budget)
    svg_bytes, view = render_view(view, "svg", opts)
    svg = _inline_svg(svg_bytes.decode("utf-8"))
    shown = view.report
    data = _json_for_script(shown.to_dict())
    detail = _json_for_script(folded_detail(view))
    counts = shown.counts()
    worst = next((s for s in ("error", "warning", "info") if counts.get(s)), "ok")
    findings = _finding_items(shown)
    n_live = sum(1 for _, h in findings if "gp-muted" not in h.split(">", 1)[0])
    chips = "".join(_badge(s, f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}")
                    for s in ("error", "warning", "info") if counts.get(s))
    if not chips:
        chips = _badge("ok", "no findings")
    listing = ("".join(h for _, h in findings) if findings else
               '<li class="gp-empty">Nothing to report: every known parameter gets a gradient.</li>')
    notes = "".join(f"<li>{_e(n)}</li>" for n in shown.notes)
    notes_html = (f'<details class="gp-section"><summary>Notes</summary><ul class="gp-notes">'
                  f"{notes}</ul></details>") if notes else ""
    title = f"graphprobe: {report.verdict()}"
    n_params = sum(1 for p in report.params if not p.get("frozen"))
    n_cuts = sum(1 for c in report.cuts if not c.get("ignored"))
    stats = " · ".join(f"{k} {one if k == 1 else many}" for k, one, many in (
        (len(report.losses), "loss", "losses"), (n_params, "parameter", "parameters"),
        (len(report.model), "node", "nodes"), (n_cuts, "cut", "cuts")))
    if view.collapsed:
        stats += f" · {len(shown.model)} drawn"
    return _asset("report.html").format(
        title=_e(title), csp=_CSP, favicon=_e(_FAVICON), css=_asset("report.css"),
        js=_asset("report.js"), svg=svg, data=data, detail=detail,
        verdict=_e(report.verdict()), worst=_e(worst), chips=chips, listing=listing,
        n_findings=n_live, stats=_e(stats), reaches=_reaches_table(shown), notes=notes_html,
    )
