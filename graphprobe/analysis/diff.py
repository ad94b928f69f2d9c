"""What changed between two saved reports: which loss gained or lost which parameter, which cuts
appeared or went. ``graphprobe diff old.json new.json`` and ``check --baseline`` are built on it.

It reads the schema-1 dicts (:meth:`graphprobe.Report.to_dict`), nothing of the run, so any two
saved reports compare. Parameters and losses are matched by name, cuts by ``(kind, file, source
line)`` so that a cut whose line only moved (code added above it) is the same cut.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CutRef", "ReachChange", "ReportDiff", "diff_reports"]


@dataclass(frozen=True)
class ReachChange:
    """One loss whose reach changed: the parameters it no longer reaches, and the new ones.

    ``lost`` holds only parameters that still exist in the new report (a parameter that was
    removed from the model is in :attr:`ReportDiff.params_removed`, not lost).
    """

    loss: str
    lost: list[str] = field(default_factory=list)
    gained: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CutRef:
    """A cut as the diff names it: its kind, where it is, its source line, what it blocks."""

    kind: str
    location: str | None
    line: str
    severity: str
    #: ``[{loss, params}]`` as in the report's cut
    blocked: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str | None, str]:
        """What matches it with a cut of the other report: kind, file and source text.

        The line number is left out (code added above the cut moves it); a cut without source
        text (a ``value_match`` guess) is matched by its whole location.
        """
        file = self.location.rsplit(":", 1)[0] if self.location else None
        return (self.kind, file, self.line) if self.line else (self.kind, self.location, "")


@dataclass
class ReportDiff:
    """The difference from an old report to a new one; :attr:`regressed` is the CI verdict."""

    old_verdict: str
    new_verdict: str
    #: losses in both reports whose reach changed, in the new report's loss order
    changes: list[ReachChange] = field(default_factory=list)
    losses_added: list[str] = field(default_factory=list)
    losses_removed: list[str] = field(default_factory=list)
    params_added: list[str] = field(default_factory=list)
    params_removed: list[str] = field(default_factory=list)
    cuts_appeared: list[CutRef] = field(default_factory=list)
    cuts_went: list[CutRef] = field(default_factory=list)
    #: parameter name -> its module path (either report), to group names in the text
    modules: dict[str, str | None] = field(default_factory=dict)

    @property
    def regressed(self) -> bool:
        """True when a loss lost a parameter it used to reach (``graphprobe diff`` exits 1)."""
        return any(c.lost for c in self.changes)

    @property
    def empty(self) -> bool:
        """True when nothing the diff looks at changed."""
        return not (self.changes or self.losses_added or self.losses_removed or self.params_added
                    or self.params_removed or self.cuts_appeared or self.cuts_went)


def _cuts(report: dict[str, Any]) -> list[CutRef]:
    # Ignored cuts are deliberate (the user marked them), not findings: they don't count here.
    return [CutRef(kind=c.get("kind", ""), location=c.get("location"), line=c.get("line", ""),
                   severity=c.get("severity", "info"), blocked=list(c.get("blocked", [])))
            for c in report.get("cuts", []) if not c.get("ignored")]


def _unmatched(a: list[CutRef], b: list[CutRef]) -> list[CutRef]:
    """The cuts of ``a`` with no partner in ``b``, matched by key as multisets, in ``a``'s order."""
    left = Counter(c.key for c in b)
    out: list[CutRef] = []
    for c in a:
        if left[c.key] > 0:
            left[c.key] -= 1
        else:
            out.append(c)
    return out


def diff_reports(old: dict[str, Any], new: dict[str, Any]) -> ReportDiff:
    """Compare two schema-1 report dicts.

    Parameters
    ----------
    old, new : dict
        :meth:`graphprobe.Report.to_dict` of the baseline and of the run to judge (``json.load``
        of ``graphprobe render x.py -o x.json``).

    Returns
    -------
    ReportDiff
        Per loss present in both, the parameters lost and gained (from ``reaches``); the losses
        and parameters added or removed; the cuts that appeared or went. ``regressed`` is True
        when a loss lost a parameter it used to reach that the new report still has.

    Notes
    -----
    Complexity: O(L·P + C) for L losses, P parameters and C cuts, with set lookups.
    """
    old_reach: dict[str, list[str]] = old.get("reaches", {})
    new_reach: dict[str, list[str]] = new.get("reaches", {})
    old_losses = [loss["name"] for loss in old.get("losses", [])]
    new_losses = [loss["name"] for loss in new.get("losses", [])]
    old_params = [p["name"] for p in old.get("params", [])]
    new_params = [p["name"] for p in new.get("params", [])]
    old_set, new_set = set(old_params), set(new_params)
    modules = {p["name"]: p.get("module") for p in old.get("params", [])}
    modules.update({p["name"]: p.get("module") for p in new.get("params", [])})

    changes: list[ReachChange] = []
    for loss in new_losses:
        if loss not in old_losses:
            continue
        before, after = old_reach.get(loss, []), new_reach.get(loss, [])
        b, a = set(before), set(after)
        lost = [p for p in before if p not in a and p in new_set]
        gained = [p for p in after if p not in b]
        if lost or gained:
            changes.append(ReachChange(loss, lost, gained))
    old_cuts, new_cuts = _cuts(old), _cuts(new)
    return ReportDiff(
        old_verdict=old.get("verdict", ""), new_verdict=new.get("verdict", ""), changes=changes,
        losses_added=[x for x in new_losses if x not in old_losses],
        losses_removed=[x for x in old_losses if x not in new_losses],
        params_added=[x for x in new_params if x not in old_set],
        params_removed=[x for x in old_params if x not in new_set],
        cuts_appeared=_unmatched(new_cuts, old_cuts), cuts_went=_unmatched(old_cuts, new_cuts),
        modules=modules)
