"""The text report: a one-line verdict, the reaches table, then each finding with its fix."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model.report import ReportData

from ..locations import short_location as _short

__all__ = ["render_text"]

MAX_LINE = 160  # the longest line the report prints (wrapped text continues indented)

_COLORS = {"error": "\033[31;1m", "warning": "\033[33m", "info": "\033[36m", "bold": "\033[1m", "dim": "\033[2m"}
_RESET = "\033[0m"


def render_text(report: "ReportData", color: bool = False) -> str:
    """The report as text for a terminal (ANSI colours when ``color``)."""

    def c(kind: str, s: str) -> str:
        return f"{_COLORS[kind]}{s}{_RESET}" if color else s

    def tag(sev: str) -> str:
        return c(sev, f"[{sev}]")

    lines: list[str] = [c("bold", ln) for ln in _wrap("graphprobe: ", report.verdict(), "  ")] + [""]
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
            shared = _join(s["params"], 6) or f"{len(s['nodes'])} nodes, no parameters"
            lines.append(_cap(f"  {' & '.join(s['losses'])} share {shared}"))
    comps = report.components
    if len(comps) > 1:
        lines += ["", c("bold", f"Components ({len(comps)})")]
        for i, comp in enumerate(comps):
            ls = ", ".join(comp["losses"]) or "no loss"
            ps = comp["params"]
            pstr = ", ".join(ps[:6]) + (f" and {len(ps) - 6} more" if len(ps) > 6 else "")
            lines.append(_cap(f"  {i + 1}. {ls}: {pstr or 'no parameters'}"))
    causes = list(getattr(report, "causes", None) or [])
    if causes:
        lines += ["", c("bold", "Causes") + "  (root cause first; what each one starves)"]
        for cause in causes:
            lines += _cause_lines(report, cause, tag)
    # Findings no cause stands for (an unused module's parameters: info) are listed briefly.
    explained = {(k, i) for cs in causes for k, i in [cs.finding] + list(cs.explains)}
    other = [d for i, d in enumerate(report.detached) if ("detached", i) not in explained]
    if other:
        lines += ["", c("bold", "Also")]
        by: dict[tuple[str, str], list[str]] = {}
        for d in other:
            by.setdefault((d["severity"], d["reason"]), []).append(d["name"])
        for (sev, reason), names in by.items():
            lines.append(_cap(f"  {tag(sev)} {_join(names)}: {reason}"))
    ignored = [cut for cut in report.cuts if cut.get("ignored")]
    for cut in ignored:
        lines.append(_cap(f"  {c('dim', '(ignored)')} {cut['kind']} cut at {_short(cut['location'])}"))
    if report.frozen:
        lines += ["", c("bold", "Frozen") + " (requires_grad=False; not detached)"]
        names = [f["name"] for f in report.frozen]
        lines.append(_cap("  " + _join(names, 12)))
    if report.opaque:
        lines += ["", c("bold", "Can't see inside")]
        for o in report.opaque[:10]:
            lines.append(_cap(f"  {o['op']}" + (f" in {o['module']}" if o["module"] else "") + f": {o['reason']}"))
    said = {e["message"] for e in report.errors}
    for n in report.notes:
        if n not in said:
            lines.append(_cap(c("dim", f"note: {n}")))
    counts = report.counts()
    lines += ["", f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"]
    return "\n".join(lines) + "\n"




def _join(names: list[str], limit: int = 4) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" … and {len(names) - limit} more"


def _cap(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 1] + "…"


def _wrap(prefix: str, text: str, indent: str = "        ") -> list[str]:
    """``prefix + text`` broken at spaces into lines of at most MAX_LINE characters."""
    import textwrap

    return textwrap.wrap(prefix + text, MAX_LINE, subsequent_indent=indent, break_long_words=True,
                         break_on_hyphens=False) or [prefix.rstrip()]


def _cause_lines(report: "ReportData", cause: Any, tag: Any) -> list[str]:
    """One cause: its title, the quoted line, what it starves by module, why, and the fix."""
    kind, idx = cause.finding
    f = getattr(report, kind)[idx] if idx < len(getattr(report, kind)) else {}
    out = []
    head = f"  {tag(cause.severity)} {cause.title}"
    if kind == "cuts" and f:
        frm = f["from"].get("module") or f["from"].get("op")
        to = f["to"].get("module") or f["to"].get("op")
        head += f": {frm} → {to}"
    out.append(_cap(head))
    if cause.line:
        out.append(_cap(f"      {_short(cause.location)}  {cause.line}"))
    if kind == "cuts" and f:
        chain = " → ".join(str(s["op"]) for s in f["chain"])
        via = f"      via {chain}"
        if f.get("exit_location"):
            via += f"; the op inside it at {_short(f['exit_location'])}"
        if f.get("reentry_location") and f["reentry_location"] != f["location"]:
            via += f"; re-entered autograd at {_short(f['reentry_location'])}"
        out.append(_cap(via))
    for st in cause.starves:
        held = f" held by {', '.join(st.optimizers)}" if st.optimizers else ""
        n = len(st.params)
        of = f", for {_join(st.losses, 3)}" if st.losses else ""
        names = f" ({_join(st.params)})" if n > 1 else f" ({st.params[0]})"
        if cause.severity == "info":  # an intended cut keeps these out of one loss; nothing is starved
            out.append(_cap(f"      keeps {st.module} ({n} parameter{'s' if n != 1 else ''}{held}) out of "
                            f"{_join(st.losses, 3) or 'the loss'}"))
        else:
            out.append(_cap(f"      starves {st.module}: {n} parameter{'s' if n != 1 else ''}{held}{of}{names}"))
    explained = [getattr(report, k)[i] for k, i in cause.explains if i < len(getattr(report, k))]
    leaves = [d["name"] for d in explained if d.get("kind") == "reentry_leaf"]
    if leaves:
        out.append(_cap(f"      rebuilt leaf: {_join(leaves)}"))
    freed = [d for d in explained if "op" in d and "losses" in d and d.get("kind") is None]
    if freed:
        ops = sorted({str(d["op"]) for d in freed})
        out.append(_cap(f"      freed: {len(freed)} node{'s' if len(freed) != 1 else ''} ({_join(ops)})"))
    if cause.reason:
        out += _wrap("      why: ", cause.reason)
    if cause.fix:
        out += _wrap("      fix: ", cause.fix)
    return out
