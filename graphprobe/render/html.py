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
    from ..report import Report

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


def _finding_items(report: "Report") -> list[tuple[int, str]]:
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


def _reaches_table(report: "Report") -> str:
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


def render_html(report: "Report", options: Any = None, **dot_options: Any) -> str:
    """The report as one self-contained HTML page (see the module docstring).

    Parameters
    ----------
    report : Report
        What :func:`graphprobe.probe` found.
    options : DotOptions, optional
        How to draw the graph; ``dot_options`` (``title``, ``rankdir`` ...) override its fields.

    Returns
    -------
    str
        The whole page. It names no URL to load: open it from disk, offline.
    """
    fields = dict(vars(options)) if options is not None else {}
    fields.update(dot_options)
    if fields.get("title") is None:
        fields["title"] = ""  # the side panel shows the verdict; the picture need not repeat it
    svg = _inline_svg(report.to_svg(**fields))
    data = _json_for_script(report.to_dict())
    counts = report.counts()
    worst = next((s for s in ("error", "warning", "info") if counts.get(s)), "ok")
    findings = _finding_items(report)
    n_live = sum(1 for _, h in findings if "gp-muted" not in h.split(">", 1)[0])
    chips = "".join(_badge(s, f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}")
                    for s in ("error", "warning", "info") if counts.get(s))
    if not chips:
        chips = _badge("ok", "no findings")
    listing = ("".join(h for _, h in findings) if findings else
               '<li class="gp-empty">Nothing to report: every known parameter gets a gradient.</li>')
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    notes_html = (f'<details class="gp-section"><summary>Notes</summary><ul class="gp-notes">'
                  f"{notes}</ul></details>") if notes else ""
    title = f"graphprobe: {report.verdict()}"
    n_params = sum(1 for p in report.params if not p.get("frozen"))
    n_cuts = sum(1 for c in report.cuts if not c.get("ignored"))
    stats = " · ".join(f"{k} {one if k == 1 else many}" for k, one, many in (
        (len(report.losses), "loss", "losses"), (n_params, "parameter", "parameters"),
        (len(report.model), "node", "nodes"), (n_cuts, "cut", "cuts")))
    return _PAGE.format(
        title=_e(title), csp=_CSP, favicon=_e(_FAVICON), css=_CSS, js=_JS, svg=svg, data=data,
        verdict=_e(report.verdict()), worst=_e(worst), chips=chips, listing=listing,
        n_findings=n_live, stats=_e(stats), reaches=_reaches_table(report), notes=notes_html,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="graphprobe">
<title>{title}</title>
<link rel="icon" href="{favicon}">
<style>{css}</style>
</head>
<body>
<header class="gp-top">
  <div class="gp-brand"><span class="gp-logo" aria-hidden="true"></span>graphprobe</div>
  <div class="gp-top-stats">{stats}</div>
  <div class="gp-chips">{chips}</div>
</header>
<main class="gp-main">
  <section class="gp-graph" aria-label="autograd graph">
    <div class="gp-toolbar" role="toolbar">
      <button type="button" id="gp-zoom-in" title="Zoom in (+)">+</button>
      <button type="button" id="gp-zoom-out" title="Zoom out (&minus;)">&minus;</button>
      <button type="button" id="gp-fit" title="Fit the graph to the window (0)">fit</button>
      <span class="gp-zoom-level" id="gp-zoom-level">100%</span>
    </div>
    <div class="gp-hint">drag to pan · wheel to zoom · click a node for details</div>
    <div class="gp-canvas" id="gp-canvas">{svg}</div>
  </section>
  <aside class="gp-side">
    <div class="gp-scroll" id="gp-side-scroll">
      <div class="gp-verdict gp-verdict-{worst}" id="gp-verdict">
        <div class="gp-verdict-label">Verdict</div>
        <div class="gp-verdict-text">{verdict}</div>
      </div>
      <h2 class="gp-h2">Findings <span class="gp-count">{n_findings}</span></h2>
      <ol class="gp-findings" id="gp-findings">{listing}</ol>
      {reaches}
      {notes}
    </div>
    <div class="gp-inspector" id="gp-inspector">
      <h2 class="gp-h2">Details</h2>
      <div id="gp-details" class="gp-details"><p class="gp-dim">Click a node or a finding to see its details here.</p></div>
    </div>
  </aside>
</main>
<script type="application/json" id="gp-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""

_CSS = r"""
:root {
  --ink: #1f2328; --dim: #656d76; --line: #d0d7de; --bg: #f6f8fa; --panel: #ffffff;
  --err: #c62828; --err-bg: #fdecea; --warn: #a15c00; --warn-bg: #fff4e0;
  --info: #2f6ea6; --info-bg: #e8f1fb; --ok: #1e7b34; --ok-bg: #e6f4ea;
  --accent: #ff9500;
  --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body { font: 14px/1.45 var(--sans); color: var(--ink); background: var(--bg);
       display: flex; flex-direction: column; overflow: hidden; }
code, .gp-chain, .gp-pre { font-family: var(--mono); font-size: 12.5px; }
.gp-top { display: flex; align-items: center; gap: 16px; padding: 9px 16px; background: #24292f;
          color: #fff; flex: 0 0 auto; min-width: 0; }
.gp-brand { font-weight: 700; font-size: 15px; letter-spacing: .2px; display: flex;
            align-items: center; gap: 8px; white-space: nowrap; }
.gp-logo { width: 16px; height: 16px; border-radius: 4px; display: inline-block;
           background: linear-gradient(135deg, #4f7396 0 45%, #d62728 45% 55%, #e0b000 55%); }
.gp-top-stats { flex: 1 1 auto; min-width: 0; white-space: nowrap; overflow: hidden;
                text-overflow: ellipsis; color: #afb8c1; font-size: 13px; }
.gp-chips { display: flex; gap: 6px; flex: 0 0 auto; }
.gp-main { flex: 1 1 auto; display: flex; min-height: 0; }
.gp-graph { position: relative; flex: 1 1 auto; min-width: 0; background: #fff;
            border-right: 1px solid var(--line); }
.gp-canvas { position: absolute; inset: 0; overflow: clip; cursor: grab; touch-action: none;
             user-select: none; -webkit-user-select: none; }
.gp-canvas.gp-dragging { cursor: grabbing; }
.gp-canvas > svg { width: 100%; height: 100%; display: block; }
.gp-toolbar { position: absolute; top: 12px; left: 12px; z-index: 2; display: flex; gap: 4px;
              align-items: center; background: rgba(255,255,255,.94); border: 1px solid var(--line);
              border-radius: 8px; padding: 4px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.gp-toolbar button { font: 600 14px var(--sans); min-width: 32px; height: 28px; padding: 0 8px;
                     border: 1px solid var(--line); border-radius: 6px; background: #fff;
                     color: var(--ink); cursor: pointer; }
.gp-toolbar button:hover { background: var(--bg); border-color: #afb8c1; }
.gp-toolbar button:focus-visible { outline: 2px solid var(--info); outline-offset: 1px; }
.gp-zoom-level { font: 12px var(--mono); color: var(--dim); min-width: 44px; text-align: right;
                 padding-right: 4px; }
.gp-hint { position: absolute; bottom: 10px; left: 12px; z-index: 2; font-size: 12px;
           color: var(--dim); background: rgba(255,255,255,.85); padding: 2px 8px;
           border-radius: 6px; pointer-events: none; }
.gp-side { flex: 0 0 430px; max-width: 48vw; display: flex; flex-direction: column;
           background: var(--panel); min-height: 0; }
.gp-scroll { flex: 1 1 auto; overflow-y: auto; padding: 14px 16px 8px; min-height: 0; }
.gp-verdict { border-radius: 8px; padding: 10px 12px; border: 1px solid; margin-bottom: 14px; }
.gp-verdict-label { font-size: 11px; font-weight: 700; text-transform: uppercase;
                    letter-spacing: .6px; opacity: .85; margin-bottom: 2px; }
.gp-verdict-text { font-size: 14px; font-weight: 600; }
.gp-verdict-error { background: var(--err-bg); border-color: #f5c2c0; color: #8e1c1c; }
.gp-verdict-warning { background: var(--warn-bg); border-color: #f3d19e; color: #7a4600; }
.gp-verdict-info { background: var(--info-bg); border-color: #bcd6f0; color: #1f4f7a; }
.gp-verdict-ok { background: var(--ok-bg); border-color: #b7dfc2; color: #17602a; }
.gp-h2 { font-size: 12px; font-weight: 700; text-transform: uppercase; letter-spacing: .6px;
         color: var(--dim); margin: 4px 0 8px; display: flex; align-items: center; gap: 6px; }
.gp-count { background: var(--bg); border: 1px solid var(--line); border-radius: 10px;
            padding: 0 7px; font-size: 11px; color: var(--ink); }
.gp-findings { list-style: none; margin: 0 0 16px; padding: 0; display: flex;
               flex-direction: column; gap: 8px; }
.gp-finding { border: 1px solid var(--line); border-left: 4px solid var(--line); border-radius: 8px;
              padding: 9px 11px; cursor: pointer; background: #fff;
              transition: box-shadow .15s, border-color .15s, background .15s; }
.gp-finding:hover { box-shadow: 0 1px 6px rgba(0,0,0,.10); }
.gp-finding:focus-visible { outline: 2px solid var(--info); outline-offset: 1px; }
.gp-finding[data-severity="error"] { border-left-color: var(--err); }
.gp-finding[data-severity="warning"] { border-left-color: #e08a00; }
.gp-finding[data-severity="info"] { border-left-color: var(--info); }
.gp-finding.gp-active { background: #fffaf0; border-color: var(--accent);
                        box-shadow: 0 0 0 2px rgba(255,149,0,.35); }
.gp-finding.gp-muted { opacity: .62; }
.gp-f-head { display: flex; align-items: center; gap: 7px; margin-bottom: 5px; flex-wrap: wrap; }
.gp-f-title { font-weight: 600; }
.gp-f-title code { font-size: 13px; }
.gp-f-row { display: flex; gap: 8px; font-size: 13px; margin: 2px 0; }
.gp-f-label { color: var(--dim); min-width: 68px; flex: 0 0 auto; }
.gp-chain { background: #fbeaea; color: #9b1c1c; border-radius: 6px; padding: 4px 8px;
            margin: 4px 0 6px; display: inline-block; }
.gp-reason { margin: 6px 0 0; color: #3a4048; font-size: 13px; }
.gp-fix { margin: 6px 0 0; font-size: 13px; background: var(--ok-bg); border-radius: 6px;
          padding: 6px 8px; color: #17482a; }
.gp-fix b { color: var(--ok); text-transform: uppercase; font-size: 11px; letter-spacing: .5px;
            margin-right: 4px; }
.gp-pre { white-space: pre-wrap; background: var(--bg); padding: 6px 8px; border-radius: 6px;
          margin: 6px 0 0; max-height: 160px; overflow: auto; }
.gp-badge { display: inline-block; font-size: 10.5px; font-weight: 700; text-transform: uppercase;
            letter-spacing: .5px; padding: 1px 7px; border-radius: 10px; line-height: 17px;
            white-space: nowrap; }
.gp-sev-error { background: var(--err); color: #fff; }
.gp-sev-warning { background: #f0a020; color: #3b2300; }
.gp-sev-info { background: var(--info); color: #fff; }
.gp-sev-ok { background: var(--ok); color: #fff; }
.gp-tag { font-size: 10.5px; border: 1px solid var(--line); border-radius: 10px; padding: 0 6px;
          color: var(--dim); }
.gp-empty { color: var(--ok); padding: 8px 0; }
.gp-dim { color: var(--dim); font-weight: 400; text-transform: none; letter-spacing: 0; }
.gp-section { margin: 0 0 14px; }
.gp-section > summary { cursor: pointer; font-size: 12px; font-weight: 700;
                        text-transform: uppercase; letter-spacing: .6px; color: var(--dim);
                        margin-bottom: 6px; }
.gp-reaches { border-collapse: collapse; font-size: 12.5px; width: 100%; }
.gp-reaches th { font-weight: 600; color: var(--dim); padding: 2px 6px; text-align: center;
                 border-bottom: 1px solid var(--line); }
.gp-reaches td { padding: 2px 6px; text-align: center; border-bottom: 1px solid #eef1f4; }
.gp-reaches td.gp-pname { text-align: left; }
.gp-reaches .gp-yes { color: var(--ok); font-weight: 700; }
.gp-reaches .gp-no { color: #b8bfc6; }
.gp-param-row { cursor: pointer; }
.gp-param-row:hover { background: var(--bg); }
.gp-notes { margin: 0; padding-left: 18px; font-size: 13px; color: var(--dim); }
.gp-inspector { flex: 0 0 auto; max-height: 46%; overflow-y: auto; border-top: 1px solid var(--line);
                background: #fbfcfd; padding: 10px 16px 14px; }
.gp-details table { border-collapse: collapse; width: 100%; font-size: 13px; }
.gp-details th { text-align: left; color: var(--dim); font-weight: 500; padding: 2px 10px 2px 0;
                 vertical-align: top; white-space: nowrap; width: 1%; }
.gp-details td { padding: 2px 0; word-break: break-word; }
.gp-details .gp-d-title { font-size: 15px; font-weight: 700; margin: 0 0 6px;
                          display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.gp-kind { font-size: 10.5px; font-weight: 700; text-transform: uppercase; letter-spacing: .5px;
           padding: 1px 7px; border-radius: 10px; background: #eaeef2; color: #424a53; }
.gp-kind-param { background: #dbe8f5; color: #2c4a66; }
.gp-kind-loss { background: #ffe9a8; color: #6b5000; }
.gp-kind-reentry_leaf { background: #ffe9cc; color: #8a4a00; }
.gp-kind-cut { background: #fbeaea; color: #9b1c1c; }
.gp-d-findings { margin: 8px 0 0; padding: 0; list-style: none; font-size: 13px; }
.gp-d-findings li { margin: 3px 0; display: flex; gap: 6px; align-items: baseline; }
.gp-pill { display: inline-block; background: #eaeef2; border-radius: 10px; padding: 0 7px;
           margin: 1px 2px 1px 0; font-size: 12px; }
/* The graph: hover, selection, highlight. */
#gp-svg g.node, #gp-svg g.edge { cursor: pointer; }
#gp-svg g.node:hover path, #gp-svg g.node:hover polygon, #gp-svg g.node:hover ellipse {
  stroke-width: 2px; }
#gp-svg g.node.gp-selected path, #gp-svg g.node.gp-selected polygon,
#gp-svg g.node.gp-selected ellipse { stroke: #0969da; stroke-width: 3px;
  filter: drop-shadow(0 0 3px rgba(9,105,218,.55)); }
#gp-svg g.gp-highlight path, #gp-svg g.gp-highlight polygon, #gp-svg g.gp-highlight ellipse {
  filter: drop-shadow(0 0 2px #ffb000) drop-shadow(0 0 6px #ff9500);
  animation: gp-pulse 1.1s ease-in-out 3; }
#gp-svg g.edge.gp-highlight path { stroke-width: 5px; }
#gp-svg g.edge.gp-highlight text { font-weight: 700; }
#gp-svg g.node.gp-highlight path, #gp-svg g.node.gp-highlight polygon,
#gp-svg g.node.gp-highlight ellipse { stroke: #ff8c00; stroke-width: 3.5px; }
@keyframes gp-pulse { 50% { filter: drop-shadow(0 0 1px #ffb000) drop-shadow(0 0 12px #ff9500); } }
@media (max-width: 900px) {
  .gp-main { flex-direction: column; }
  .gp-graph { flex: 1 1 60%; border-right: 0; border-bottom: 1px solid var(--line); }
  .gp-side { flex: 1 1 40%; max-width: none; }
}
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("gp-data").textContent);
  var canvas = document.getElementById("gp-canvas");
  var svg = document.getElementById("gp-svg");
  var details = document.getElementById("gp-details");
  var zoomLabel = document.getElementById("gp-zoom-level");
  var nodes = data.nodes || [], edges = data.edges || [];
  var byId = {};
  nodes.forEach(function (n) { byId[n.id] = n; });

  // -- pan and zoom: the SVG's viewBox is the camera ----------------------------------------
  var base = (svg.getAttribute("viewBox") || "0 0 100 100").split(/[\s,]+/).map(Number);
  var pad = Math.max(base[2], base[3]) * 0.02;
  var PT = 96 / 72;  // CSS pixels per SVG unit (Graphviz draws in points) at 100%
  // The whole graph in view, but a small graph no larger than 125%: huge text helps nobody.
  function homeView() {
    var h = { x: base[0] - pad, y: base[1] - pad, w: base[2] + 2 * pad, h: base[3] + 2 * pad };
    var r = canvas.getBoundingClientRect(), most = 1.25 * PT;
    if (r.width && r.height && Math.min(r.width / h.w, r.height / h.h) > most) {
      var w = r.width / most, hh = r.height / most;
      h = { x: h.x + (h.w - w) / 2, y: h.y + (h.h - hh) / 2, w: w, h: hh };
    }
    return h;
  }
  var home = homeView();
  var vb = { x: home.x, y: home.y, w: home.w, h: home.h };
  var anim = null;

  function apply() {
    svg.setAttribute("viewBox", [vb.x, vb.y, vb.w, vb.h].join(" "));
    zoomLabel.textContent = Math.round(100 / (unitsPerPixel() * PT)) + "%";
  }
  function unitsPerPixel() {
    var r = canvas.getBoundingClientRect();
    if (!r.width || !r.height) { return 1; }
    return Math.max(vb.w / r.width, vb.h / r.height);  // "meet": the larger ratio wins
  }
  function toSvg(clientX, clientY) {
    var r = canvas.getBoundingClientRect(), u = unitsPerPixel();
    var cx = vb.x + vb.w / 2, cy = vb.y + vb.h / 2;
    return { x: cx + (clientX - (r.left + r.width / 2)) * u,
             y: cy + (clientY - (r.top + r.height / 2)) * u };
  }
  function stop() { if (anim) { cancelAnimationFrame(anim); anim = null; } }
  function zoomAt(factor, clientX, clientY) {
    stop();
    var z = home.w / (vb.w / factor);
    if (z < 0.05 || z > 40) { return; }
    var p = toSvg(clientX, clientY);
    vb = { x: p.x - (p.x - vb.x) / factor, y: p.y - (p.y - vb.y) / factor,
           w: vb.w / factor, h: vb.h / factor };
    apply();
  }
  function zoomCenter(factor) {
    var r = canvas.getBoundingClientRect();
    zoomAt(factor, r.left + r.width / 2, r.top + r.height / 2);
  }
  function animateTo(target) {
    stop();
    var from = { x: vb.x, y: vb.y, w: vb.w, h: vb.h }, t0 = null, dur = 260;
    function step(t) {
      if (t0 === null) { t0 = t; }
      var k = Math.min(1, (t - t0) / dur), e = 1 - Math.pow(1 - k, 3);
      vb = { x: from.x + (target.x - from.x) * e, y: from.y + (target.y - from.y) * e,
             w: from.w + (target.w - from.w) * e, h: from.h + (target.h - from.h) * e };
      apply();
      anim = k < 1 ? requestAnimationFrame(step) : null;
    }
    anim = requestAnimationFrame(step);
  }
  function fit() { home = homeView(); animateTo({ x: home.x, y: home.y, w: home.w, h: home.h }); }

  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var dy = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
    zoomAt(Math.exp(-dy * 0.0015), ev.clientX, ev.clientY);
  }, { passive: false });

  var drag = null, suppressClick = false;
  canvas.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0) { return; }
    stop();
    drag = { x: ev.clientX, y: ev.clientY, vx: vb.x, vy: vb.y, u: unitsPerPixel(), moved: false,
             id: ev.pointerId };
  });
  canvas.addEventListener("pointermove", function (ev) {
    if (!drag) { return; }
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) { return; }
    if (!drag.moved) {
      drag.moved = true;
      canvas.classList.add("gp-dragging");
      try { canvas.setPointerCapture(drag.id); } catch (e) { /* not a real pointer */ }
    }
    vb.x = drag.vx - dx * drag.u;
    vb.y = drag.vy - dy * drag.u;
    apply();
  });
  function endDrag() {
    if (drag && drag.moved) { suppressClick = true; setTimeout(function () { suppressClick = false; }, 0); }
    drag = null;
    canvas.classList.remove("gp-dragging");
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);

  document.getElementById("gp-zoom-in").addEventListener("click", function () { zoomCenter(1.25); });
  document.getElementById("gp-zoom-out").addEventListener("click", function () { zoomCenter(0.8); });
  document.getElementById("gp-fit").addEventListener("click", fit);
  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA")) { return; }
    if (ev.key === "+" || ev.key === "=") { zoomCenter(1.25); }
    else if (ev.key === "-" || ev.key === "_") { zoomCenter(0.8); }
    else if (ev.key === "0") { fit(); }
    else if (ev.key === "Escape") { clearMarks(); }
  });
  window.addEventListener("resize", apply);

  // Bring elements into view: centre them, zoom out if they do not fit, zoom in if tiny.
  function reveal(els) {
    if (!els.length) { return; }
    var r = canvas.getBoundingClientRect();
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    els.forEach(function (el) {
      var b = el.getBoundingClientRect();
      x0 = Math.min(x0, b.left); y0 = Math.min(y0, b.top);
      x1 = Math.max(x1, b.right); y1 = Math.max(y1, b.bottom);
    });
    var m = 24;
    if (x0 >= r.left + m && y0 >= r.top + m && x1 <= r.right - m && y1 <= r.bottom - m &&
        (x1 - x0) * (y1 - y0) > 64) { return; }  // already in view, and big enough to see
    var p0 = toSvg(x0, y0), p1 = toSvg(x1, y1);
    var bw = p1.x - p0.x, bh = p1.y - p0.y;
    var w = vb.w, h = vb.h;
    var need = Math.max(bw / (vb.w * 0.8), bh / (vb.h * 0.8));
    if (need > 1) { w *= need; h *= need; }
    else if (home.w / vb.w < 1 && need < 0.3) { var k = Math.max(vb.w / home.w, need / 0.3); w /= k; h /= k; }
    var cx = (p0.x + p1.x) / 2, cy = (p0.y + p1.y) / 2;
    if (w > home.w * 20) { w = home.w * 20; h = home.h * 20; }
    animateTo({ x: cx - w / 2, y: cy - h / 2, w: w, h: h });
  }

  // -- marks -----------------------------------------------------------------------------------
  function clearMarks() {
    Array.prototype.forEach.call(svg.querySelectorAll(".gp-highlight, .gp-selected"), function (el) {
      el.classList.remove("gp-highlight"); el.classList.remove("gp-selected");
    });
    Array.prototype.forEach.call(document.querySelectorAll(".gp-finding.gp-active"), function (el) {
      el.classList.remove("gp-active");
    });
  }
  function clearSelection() {
    Array.prototype.forEach.call(svg.querySelectorAll(".gp-selected"), function (el) {
      el.classList.remove("gp-selected");
    });
  }
  function firstText(g) {
    var t = g.querySelector("text");
    return t ? t.textContent : "";
  }
  // The SVG node for JSON node id (or for a name), checked against its drawn label: in a
  // collapsed picture the drawn ids need not be the report's.
  function nodeEl(id, name) {
    var el = document.getElementById("n" + id), n = byId[id];
    if (el && el.classList.contains("node")) {
      var t = firstText(el);
      if (!n || t === n.label || t === n.name || (name && t === name)) { return el; }
    }
    var want = name || (n && (n.name || n.label));
    if (!want) { return null; }
    var all = svg.querySelectorAll("g.node"), i;
    for (i = 0; i < all.length; i++) { if (firstText(all[i]) === want) { return all[i]; } }
    return null;
  }
  function cutEls(c) {
    return Array.prototype.slice.call(svg.querySelectorAll("g.edge.cut" + c));
  }

  // -- details ---------------------------------------------------------------------------------
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }
  var consumers = {};
  edges.forEach(function (e) {
    if (e.kind === "cut") { return; }
    (consumers[e.source] = consumers[e.source] || []).push(e.target);
  });
  var lossName = {};
  (data.losses || []).forEach(function (l) { lossName[l.node] = l.name; });
  function reachedBy(id) {
    var p = (data.params || []).filter(function (q) { return q.node === id; })[0];
    if (p) { return p.reached_by || []; }
    var seen = {}, stack = [id], out = [];
    seen[id] = true;
    while (stack.length) {
      var v = stack.pop();
      if (lossName[v] !== undefined) { out.push(lossName[v]); }
      (consumers[v] || []).forEach(function (w) { if (!seen[w]) { seen[w] = true; stack.push(w); } });
    }
    return out;
  }
  function findingsAbout(id) {
    var out = [];
    (data.cuts || []).forEach(function (c, i) {
      var f = c.from || {}, t = c.to || {};
      if (f.node === id || t.node === id) {
        out.push({ sev: c.severity, text: (c.kind || "data") + " cut " + (f.node === id ? "leaves" : "enters") + " here", cut: i });
      }
    });
    (data.detached || []).forEach(function (d) {
      if (d.node === id) { out.push({ sev: d.severity, text: d.kind === "reentry_leaf" ? "leaf rebuilt outside autograd" : "no gradient reaches it" }); }
    });
    (data.freed || []).forEach(function (f) {
      if (f.node === id) { out.push({ sev: f.severity, text: "freed by an earlier backward" }); }
    });
    return out;
  }
  function row(k, v) { return v === "" || v === null || v === undefined ? "" : "<tr><th>" + esc(k) + "</th><td>" + v + "</td></tr>"; }
  function code(v) { return v === null || v === undefined || v === "" ? "" : "<code>" + esc(v) + "</code>"; }
  function pills(list) { return list.length ? list.map(function (x) { return '<span class="gp-pill">' + esc(x) + "</span>"; }).join("") : ""; }
  function showNode(id, el) {
    var n = byId[id];
    var drawnOk = el && n && (firstText(el) === n.label || firstText(el) === n.name);
    if (!drawnOk) {
      var a = el && el.querySelector("a");
      var tip = a ? (a.getAttribute("xlink:title") || a.getAttribute("title") || "") : "";
      var lines = el ? Array.prototype.map.call(el.querySelectorAll("text"), function (t) { return t.textContent; }) : [];
      details.innerHTML = '<div class="gp-d-title">' + esc(lines[0] || "node") + "</div>" +
        (tip ? '<p class="gp-reason">' + esc(tip).replace(/\n/g, "<br>") + "</p>" : "") +
        (lines.length > 1 ? '<p class="gp-dim">' + esc(lines.slice(1).join(" · ")) + "</p>" : "");
      return;
    }
    var shape = n.shape === null || n.shape === undefined ? "" : (n.shape.length ? n.shape.join(" × ") : "scalar");
    var p = (data.params || []).filter(function (q) { return q.node === id; })[0];
    var reach = reachedBy(id);
    var fs = findingsAbout(id);
    var html = '<div class="gp-d-title"><span>' + esc(n.name && n.kind !== "op" ? n.name : n.label) + "</span>" +
      '<span class="gp-kind gp-kind-' + esc(n.kind) + '">' + esc(n.kind === "reentry_leaf" ? "re-entry leaf" : n.kind) + "</span></div>" +
      "<table>" +
      row("op", code(n.op)) +
      row("module", n.module ? code(n.module) : '<span class="gp-dim">none</span>') +
      row("name", n.name && n.name !== n.label ? code(n.name) : "") +
      row("shape", shape ? code(shape) : "") +
      row("dtype", code(n.dtype)) +
      row("device", code(n.device)) +
      row("source", code(n.location)) +
      row("optimizers", p && p.optimizers && p.optimizers.length ? pills(p.optimizers) : "") +
      row("frozen", p && p.frozen ? "yes (requires_grad=False)" : "") +
      row("freed", n.freed ? "yes: an earlier backward freed its saved tensors" : "") +
      row("reached by", reach.length ? pills(reach) : '<span class="gp-dim">no loss</span>') +
      row("node", code("n" + n.id)) +
      "</table>";
    if (fs.length) {
      html += '<ul class="gp-d-findings">' + fs.map(function (f) {
        return '<li><span class="gp-badge gp-sev-' + esc(f.sev) + '">' + esc(f.sev) + "</span>" + esc(f.text) + "</li>";
      }).join("") + "</ul>";
    }
    details.innerHTML = html;
  }
  function showCut(i) {
    var c = (data.cuts || [])[i];
    if (!c) { return; }
    var chain = (c.chain || []).map(function (x) { return x.op; }).filter(Boolean).join(" → ");
    var f = c.from || {}, t = c.to || {};
    details.innerHTML = '<div class="gp-d-title"><span>' + esc((c.kind || "data") + " cut") + "</span>" +
      '<span class="gp-badge gp-sev-' + esc(c.severity) + '">' + esc(c.severity) + "</span></div><table>" +
      row("chain", code(chain)) +
      row("at", code(c.location)) +
      row("re-enters", c.reentry_location && c.reentry_location !== c.location ? code(c.reentry_location) : "") +
      row("from", code([f.op, f.module && "(" + f.module + ")"].filter(Boolean).join(" "))) +
      row("to", code([t.op, t.module && "(" + t.module + ")"].filter(Boolean).join(" "))) +
      row("blocks", (c.blocked || []).map(function (b) { return "<b>" + esc(b.loss) + "</b> ↛ " + esc((b.params || []).join(", ")); }).join("<br>")) +
      "</table>";
  }

  // -- clicks ----------------------------------------------------------------------------------
  function selectFinding(li) {
    clearMarks();
    li.classList.add("gp-active");
    var els = [];
    var ids = (li.dataset.nodes || "").split(" ").filter(Boolean).map(Number);
    if (li.dataset.kind === "cut") {
      var c = Number(li.dataset.cut);
      els = cutEls(c);
      showCut(c);
    }
    if (!els.length) {  // not a cut, or its edge is not drawn: mark its nodes
      ids.forEach(function (id) {
        var el = nodeEl(id, li.dataset.name);
        if (el) { els.push(el); }
      });
      if (ids.length && li.dataset.kind !== "cut") { var el0 = nodeEl(ids[0], li.dataset.name); if (el0) { showNode(ids[0], el0); } }
    }
    els.forEach(function (el) { el.classList.add("gp-highlight"); });
    reveal(els);
  }
  Array.prototype.forEach.call(document.querySelectorAll(".gp-finding"), function (li) {
    li.addEventListener("click", function () { selectFinding(li); });
    li.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); selectFinding(li); }
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".gp-param-row"), function (tr) {
    tr.addEventListener("click", function () {
      var id = Number(tr.dataset.node), el = nodeEl(id);
      clearSelection();
      if (el) { el.classList.add("gp-selected"); reveal([el]); }
      showNode(id, el);
    });
  });
  svg.addEventListener("click", function (ev) {
    if (suppressClick) { return; }
    var g = ev.target.closest ? ev.target.closest("g.node, g.edge") : null;
    if (!g) { return; }
    if (g.classList.contains("edge")) {
      var m = /(^|\s)cut(\d+)(\s|$)/.exec(g.getAttribute("class") || "");
      if (!m) { return; }
      var li = document.querySelector('.gp-finding[data-kind="cut"][data-cut="' + m[2] + '"]');
      if (li) { selectFinding(li); li.scrollIntoView({ block: "nearest", behavior: "smooth" }); }
      return;
    }
    var idm = /^n(\d+)$/.exec(g.id || "");
    if (!idm) { return; }
    clearSelection();
    g.classList.add("gp-selected");
    showNode(Number(idm[1]), g);
  });

  apply();
  window.graphprobe = { data: data, fit: fit, zoom: zoomCenter, select: selectFinding,
                        reveal: reveal, animating: function () { return anim !== null; },
                        viewBox: function () { return [vb.x, vb.y, vb.w, vb.h]; } };
})();
"""
