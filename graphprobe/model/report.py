"""The report's data: the analyses' findings over one graph, its verdict, and its JSON.

:class:`ReportData` holds what a report is; :class:`graphprobe.report.Report` adds the
renderers on top: it imports :mod:`graphprobe.render`, and the renderers take a ``ReportData``
from here and never import :mod:`graphprobe.report`, so data flows one way (model -> render).

The JSON (``Report.to_dict()``) is a public, versioned contract; ``"schema": 1``. Its keys:

- ``losses``: ``[{name, location, node}]``
- ``params``: ``[{name, shape, module, optimizers, reached_by, node, frozen}]``
- ``components``: ``[{losses, params}]``
- ``shared``: ``[{losses, params, nodes}]``
- ``detached``: ``[{name, kind, severity, optimizers, reason, fix, node, cut}]``; ``kind`` is
  ``unreached`` or ``reentry_leaf`` (then also ``consumed`` when its gradient is used, and
  ``losses``, the losses whose graph holds it)
- ``frozen``: ``[{name, module, node}]``
- ``freed``: ``[{node, op, module, losses, severity, reason, fix}]``
- ``cuts``: ``[{kind, chain: [{op, location}], location, reentry_location, from: {node, op,
  module}, to: {node, op, module}, blocked: [{loss, params}], severity, guess, ignored, reason,
  fix, line, role, count, exit_location?}]``, most severe first. ``kind`` is ``numpy``, ``item``,
  ``tolist``, ``data``, ``detach``, ``no_grad`` or ``value_match`` (a leaf linked to a saved
  tensor by value, without a recording; always ``guess``). ``location`` of a ``no_grad`` cut is
  its ``with torch.no_grad():`` line, and ``exit_location`` the line inside it; ``line`` is the
  source text at ``location``; ``role`` is ``module_input`` or ``loss_arithmetic`` (what the
  data was used as); ``count`` how many instances of the site (loop iterations) it stands for.
- ``errors``: ``[{kind, message, severity, fix, location?, ...}]``; ``kind`` is
  ``backward_twice`` (with ``loss``, ``freed_by``, ``nodes``, ``modules``), ``no_grad_root``,
  ``backward_failed``, ``script_error`` or ``ddp_unused`` (info: DDP's error explained)
- every finding above may carry ``caused_by``: the index in ``causes`` of its root cause
- ``causes``: ``[{severity, kind, title, location, line, count, reason, fix, guess, finding:
  {list, index}, starves: [{module, count, params, optimizers, losses}], explains: [{list,
  index}]}]``: one entry per root cause, most severe first; ``finding`` is the cause itself
  (``list`` names the key above), ``starves`` the parameters it cuts off, grouped by module
- ``opaque``: ``[{node, op, module, kind, confirmed, reason}]``: regions graphprobe can't see
  inside (reentrant checkpoint, ``torch.compile``, custom ``autograd.Function``), and whether
  a real backward confirmed what they reach
- ``nodes``, ``edges``: the graph (see :mod:`graphprobe.model.graph` for the schema)
- ``verdict``: the one-line summary; ``findings``: counts by severity
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .graph import ProbeGraph
from ..locations import short_location as _short
from .findings import (SEVERITIES, Cause, Cut, Finding, Freed, Opaque, RebuiltLeaf, ScriptError,
                       Unreached)
from .version import SCHEMA_VERSION

__all__ = ["ReportData", "SCHEMA_VERSION", "SEVERITIES"]

_R = TypeVar("_R", bound="ReportData")


def _join(names: list[str], limit: int = 4) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" … and {len(names) - limit} more"


def _typed(cls: Any, d: dict[str, Any]) -> Any:
    """``d`` as a typed finding of ``cls``, or ``d`` itself when it has a key the class lacks."""
    f = cls.from_dict(d)
    return d if f is None else f


def _plain(items: Any) -> list[Any]:
    return [x.to_dict() if hasattr(x, "to_dict") else x for x in items]


@dataclass
class ReportData:
    """What :func:`graphprobe.probe` found, as data: the findings, the verdict and the JSON.

    :class:`graphprobe.report.Report` is this plus its renderers (text, DOT, SVG, PNG, HTML)
    and its networkx views; renderers take a ``ReportData`` (a ``Report`` is one), so nothing
    below :mod:`graphprobe.report` imports it.
    """

    model: ProbeGraph
    losses: list[dict[str, Any]] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    reaches: dict[str, list[str]] = field(default_factory=dict)
    components: list[dict[str, list[str]]] = field(default_factory=list)
    shared: list[dict[str, Any]] = field(default_factory=list)
    #: typed findings (:mod:`graphprobe.model.findings`); each reads like its JSON dict
    detached: list[Any] = field(default_factory=list)
    frozen: list[dict[str, Any]] = field(default_factory=list)
    freed: list[Any] = field(default_factory=list)
    cuts: list[Any] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    opaque: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: root causes, most severe first (:class:`graphprobe.model.findings.Cause`)
    causes: list[Cause] = field(default_factory=list)

    def add_error(self, err: ScriptError) -> None:
        """Add a diagnosis the runner made after the step was walked (DDP at the next forward),
        as its own root cause, in severity order."""
        self.errors.append(err)
        cause = Cause(severity=err.severity, kind=err.kind, title=err.message.split("\n")[0][:160],
                      location=err.location, line="", fix=err.fix, reason=err.reason,
                      finding=("errors", len(self.errors) - 1))
        pos = sum(1 for c in self.causes if SEVERITIES.index(c.severity) <= SEVERITIES.index(err.severity))
        for f in list(self.cuts) + list(self.detached) + list(self.freed) + list(self.errors):
            cb = f.get("caused_by") if isinstance(f, (dict, Finding)) else None
            if isinstance(f, Finding) and cb is not None and cb >= pos:
                f.caused_by = cb + 1
        err.caused_by = pos
        self.causes.insert(pos, cause)

    # -- findings ---------------------------------------------------------------------------
    def findings(self) -> list[dict[str, Any]]:
        """Every finding that carries a severity, ignored cuts left out."""
        out: list[dict[str, Any]] = []
        out += [c for c in self.cuts if not c.get("ignored")]
        out += list(self.detached) + list(self.freed) + list(self.errors)
        return out

    def counts(self) -> dict[str, int]:
        """Findings by severity."""
        c = {s: 0 for s in SEVERITIES}
        for f in self.findings():
            c[f["severity"]] = c.get(f["severity"], 0) + 1
        return c

    @property
    def ok(self) -> bool:
        """True when no finding has severity ``error``."""
        return self.counts()["error"] == 0

    def verdict(self) -> str:
        """The one-line summary that opens the text report: the root cause first."""
        nl = len(self.losses)
        nc = len(self.components)
        head = f"{nl} loss{'es' if nl != 1 else ''}, {nc} component{'s' if nc != 1 else ''}"
        unreached = [d["name"] for d in self.detached if d["kind"] == "unreached" and d["severity"] != "info"]
        starved = set(unreached)
        parts: list[str] = []
        errs = [e for e in self.errors if e["severity"] != "info"]
        if errs:
            parts.append(errs[0]["message"].split("\n")[0])
        live = [c for c in self.cuts if not c.get("ignored")]
        live.sort(key=lambda c: SEVERITIES.index(c["severity"]))
        leaves = [d for d in self.detached if d["kind"] == "reentry_leaf" and d["severity"] != "info"
                  and d.get("cut") is None]
        if live and live[0]["severity"] != "info":
            c = live[0]
            n = c.get("count", 1)
            where = "from a saved tensor (a guess)" if c["kind"] == "value_match" else f"at {_short(c['location'])}"
            cut = f"{c['kind']} cut {f'{n}× ' if n > 1 else ''}{where}"
            # Say what the cut blocks, unless the params it blocks get no gradient at all (said below).
            blocked = [b for b in c["blocked"] if not set(b["params"]) <= starved]
            if blocked:
                cut += f": {blocked[0]['loss']} does not reach {_join(blocked[0]['params'])}"
            parts.append(cut)
        elif leaves:
            d = leaves[0]
            ls = d.get("losses") or []
            parts.append(f"{d['name']} is a rebuilt leaf, so the graph is cut there"
                         + (f" and {_join(ls, 3)} get{'s' if len(ls) == 1 else ''} no gradient upstream of it" if ls else "")
                         + " (run under graphprobe.trace() to see where it came from)")
        if unreached:
            modules = {p["name"]: (p["module"] or p["name"]).split(".")[0] for p in self.params}
            # "loss reaches model only" would mislead when model's own parameters are starved.
            starved_tops = {modules.get(n) for n in unreached}
            reached_tops = {modules.get(p) for ps in self.reaches.values() for p in ps}
            if len(self.losses) <= 3 and not starved_tops & reached_tops:
                for loss, ps in self.reaches.items():
                    mods = list(dict.fromkeys(modules.get(p) or p for p in ps))
                    if mods and len(mods) <= 4:
                        parts.append(f"{loss} reaches {_join(mods)} only")
            parts.append(f"{_join(unreached)} get{'s' if len(unreached) == 1 else ''} no gradient"
                         + (" from it" if len(self.losses) == 1 else " from any loss"))
        elif not parts:
            parts.append("every known parameter gets a gradient" if self.params else "no known parameters")
        return head + ": " + "; ".join(parts)

    # -- output -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The public JSON contract as a dict (``"schema": 1``)."""
        g = self.model
        return {
            "schema": SCHEMA_VERSION,
            "verdict": self.verdict(),
            "findings": self.counts(),
            "losses": self.losses,
            "params": self.params,
            "reaches": self.reaches,
            "components": self.components,
            "shared": self.shared,
            "detached": _plain(self.detached),
            "frozen": self.frozen,
            "freed": _plain(self.freed),
            "cuts": _plain(self.cuts),
            "errors": _plain(self.errors),
            "opaque": _plain(self.opaque),
            "causes": _plain(self.causes),
            "notes": self.notes,
            "nodes": [g.node_attrs(i) for i in range(len(g))],
            "edges": list(g.iter_edges()),
        }

    @classmethod
    def from_dict(cls: type[_R], d: dict[str, Any]) -> _R:
        """Rebuild the report of a saved schema-1 dict (``json.load`` of ``render -o x.json``).

        Every renderer (text, DOT, SVG, PNG, HTML, JSON) gives the same bytes for the rebuilt
        report as for the one the run made, and ``Report.from_dict(d).to_dict() == d``. The
        verdict and the counts are recomputed from the findings, not read. Findings come back
        typed (:mod:`graphprobe.model.findings`); one with a key its class does not know is kept
        as the dict it is, which renderers read alike.

        Raises
        ------
        ValueError
            ``d`` is not a schema-1 report (another ``schema``, or no ``nodes``).
        """
        if not isinstance(d, dict) or "nodes" not in d or "schema" not in d:
            raise ValueError("not a graphprobe report (no \"schema\" and \"nodes\" keys)")
        if d["schema"] != SCHEMA_VERSION:
            raise ValueError(f"report schema {d['schema']!r} is not one this graphprobe reads "
                             f"(it reads schema {SCHEMA_VERSION})")
        detached = [_typed(RebuiltLeaf if x.get("kind") == "reentry_leaf" else Unreached, x)
                    for x in d.get("detached", [])]
        copy = json.loads(json.dumps(d))  # the report owns its lists; the caller's dict stays as it was
        return cls(model=ProbeGraph.from_dict(copy), losses=copy.get("losses", []),
                   params=copy.get("params", []), reaches=copy.get("reaches", {}),
                   components=copy.get("components", []), shared=copy.get("shared", []),
                   detached=detached, frozen=copy.get("frozen", []),
                   freed=[_typed(Freed, x) for x in d.get("freed", [])],
                   cuts=[_typed(Cut, x) for x in d.get("cuts", [])],
                   errors=[_typed(ScriptError, x) for x in d.get("errors", [])],
                   opaque=[_typed(Opaque, x) for x in d.get("opaque", [])],
                   notes=copy.get("notes", []),
                   causes=[Cause.from_dict(x) for x in d.get("causes", [])])

    def to_json(self, indent: int | None = 1) -> str:
        """The JSON contract as text."""
        return json.dumps(self.to_dict(), indent=indent)

    def __repr__(self) -> str:
        return f"<graphprobe.{type(self).__name__} {self.verdict()!r}>"
