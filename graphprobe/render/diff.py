"""The text of ``graphprobe diff``: a headline, then what each loss lost and gained, and the cuts."""
from __future__ import annotations

from ..analysis.diff import CutRef, ReportDiff
from ..locations import short_location as _short

__all__ = ["render_diff"]


def _by_module(names: list[str], modules: dict[str, str | None]) -> str:
    """``depth_net: depth_net.0.weight, depth_net.0.bias; detector: ...`` (top-level modules)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        top = (modules.get(n) or n).split(".")[0]
        groups.setdefault(top, []).append(n)
    return "; ".join(f"{top} ({len(ns)}): {', '.join(ns)}" for top, ns in groups.items())


def _cut(c: CutRef) -> str:
    where = _short(c.location) if c.location else "a saved tensor (a guess)"
    text = f"[{c.severity}] {c.kind} cut at {where}"
    if c.line:
        text += f": {c.line}"
    for b in c.blocked:
        text += f"\n      {b['loss']} does not reach {', '.join(b['params'])}"
    return text


def render_diff(d: ReportDiff) -> str:
    """The diff as text, one section per kind of change; sections with nothing are left out."""
    if d.regressed:
        n = sum(len(c.lost) for c in d.changes)
        who = ", ".join(c.loss for c in d.changes if c.lost)
        head = f"regression: {who} lost {n} parameter{'s' if n != 1 else ''} it used to reach"
    elif d.empty:
        head = "no change: every loss reaches the same parameters, and no cut appeared or went"
    else:
        head = "no loss lost a parameter it used to reach"
    lines = [f"graphprobe diff: {head}", f"  old: {d.old_verdict}", f"  new: {d.new_verdict}"]
    lost = [c for c in d.changes if c.lost]
    gained = [c for c in d.changes if c.gained]
    if lost:
        lines += ["", "Lost (the loss no longer sends gradient to these parameters)"]
        lines += [f"  {c.loss} lost {_by_module(c.lost, d.modules)}" for c in lost]
    if gained:
        lines += ["", "Gained (the loss now sends gradient to these parameters)"]
        lines += [f"  {c.loss} gained {_by_module(c.gained, d.modules)}" for c in gained]
    if d.cuts_appeared:
        lines += ["", "Cuts that appeared"] + [f"  {_cut(c)}" for c in d.cuts_appeared]
    if d.cuts_went:
        lines += ["", "Cuts that went"] + [f"  {_cut(c)}" for c in d.cuts_went]
    for title, names in (("Losses added", d.losses_added), ("Losses removed", d.losses_removed),
                         ("Parameters added", d.params_added), ("Parameters removed", d.params_removed)):
        if names:
            lines += ["", title, f"  {_by_module(names, d.modules)}"]
    return "\n".join(lines) + "\n"
