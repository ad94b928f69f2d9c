"""The text report: a one-line verdict, the reaches table, then each finding with its fix."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..report import Report

from ..locations import short_location as _short

__all__ = ["render_text"]

_COLORS = {"error": "\033[31;1m", "warning": "\033[33m", "info": "\033[36m", "bold": "\033[1m", "dim": "\033[2m"}
_RESET = "\033[0m"


def render_text(report: "Report", color: bool = False) -> str:
    """The report as text for a terminal (ANSI colours when ``color``)."""

    def c(kind: str, s: str) -> str:
        return f"{_COLORS[kind]}{s}{_RESET}" if color else s

    def tag(sev: str) -> str:
        return c(sev, f"[{sev}]")

    lines: list[str] = [c("bold", "graphprobe: " + report.verdict()), ""]
    params = [p for p in report.params if not p["frozen"]]
    losses = [l["name"] for l in report.losses]
    lines.append(c("bold", "Reaches") + "  (which loss sends gradient to which parameter)")
    if params and len(params) <= 12:
        w = max(len(p["name"]) for p in params)
        lines.append("  " + " " * w + "  " + "  ".join(losses))
        for p in params:
            cells = [("✓" if l in p["reached_by"] else "·").center(len(l)) for l in losses]
            opt = f"   ({', '.join(p['optimizers'])})" if p["optimizers"] else ""
            lines.append(f"  {p['name']:<{w}}  " + "  ".join(cells) + c("dim", opt))
    else:
        for loss, ps in report.reaches.items():
            lines.append(f"  {loss}: {len(ps)} parameter{'s' if len(ps) != 1 else ''}")
    if report.shared:
        lines += ["", c("bold", "Shared")]
        for s in report.shared:
            ps = ", ".join(s["params"]) or f"{len(s['nodes'])} nodes, no parameters"
            lines.append(f"  {' & '.join(s['losses'])} share {ps}")
    comps = report.components
    if len(comps) > 1:
        lines += ["", c("bold", f"Components ({len(comps)})")]
        for i, comp in enumerate(comps):
            ls = ", ".join(comp["losses"]) or "no loss"
            ps = comp["params"]
            pstr = ", ".join(ps[:6]) + (f" and {len(ps) - 6} more" if len(ps) > 6 else "")
            lines.append(f"  {i + 1}. {ls}: {pstr or 'no parameters'}")
    if report.cuts:
        lines += ["", c("bold", "Cuts")]
        for cut in report.cuts:
            chain = " → ".join(s["op"] for s in cut["chain"])
            ign = c("dim", " (ignored)") if cut.get("ignored") else ""
            guess = " (linked by value: a guess)" if cut.get("guess") else ""
            frm = cut["from"]["module"] or cut["from"]["op"]
            to = cut["to"]["module"] or cut["to"]["op"]
            lines.append(f"  {tag(cut['severity'])} {cut['kind']} cut at {_short(cut['location'])}: "
                         f"{frm} → {to} via {chain}{guess}{ign}")
            if cut.get("reentry_location") and cut["reentry_location"] != cut["location"]:
                lines.append(f"      re-entered autograd at {_short(cut['reentry_location'])}")
            for b in cut["blocked"]:
                lines.append(f"      {b['loss']} cannot reach {', '.join(b['params'])}")
            lines.append(f"      why: {cut['reason']}")
            lines.append(f"      fix: {cut['fix']}")
    det = report.detached
    if det:
        lines += ["", c("bold", "Detached")]
        for d in det:
            held = f" (held by {', '.join(d['optimizers'])})" if d["optimizers"] else ""
            what = "no loss reaches it" if d["kind"] == "unreached" else "re-entry leaf"
            lines.append(f"  {tag(d['severity'])} {d['name']}{held}: {what}")
            lines.append(f"      why: {d['reason']}")
            lines.append(f"      fix: {d['fix']}")
    if report.frozen:
        lines += ["", c("bold", "Frozen") + " (requires_grad=False; not detached)"]
        names = [f["name"] for f in report.frozen]
        lines.append("  " + ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else ""))
    if report.freed:
        lines += ["", c("bold", "Freed")]
        for f in report.freed[:10]:
            lines.append(f"  {tag('error')} {f['reason']}")
        if len(report.freed) > 10:
            lines.append(f"  ... and {len(report.freed) - 10} more freed nodes")
        lines.append(f"      fix: {report.freed[0]['fix']}")
    if report.errors:
        lines += ["", c("bold", "Errors")]
        for e in report.errors:
            lines.append(f"  {tag(e['severity'])} {e['message']}")
            if e.get("fix"):
                lines.append(f"      fix: {e['fix']}")
    if report.opaque:
        lines += ["", c("bold", "Can't see inside")]
        for o in report.opaque[:10]:
            lines.append(f"  {o['op']}" + (f" in {o['module']}" if o["module"] else "") + f": {o['reason']}")
    for n in report.notes:
        lines.append(c("dim", f"note: {n}"))
    counts = report.counts()
    lines += ["", f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"]
    return "\n".join(lines) + "\n"


