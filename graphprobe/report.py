"""The report: the analyses' findings over one graph, as text, JSON, DOT, SVG and PNG.

The JSON (``Report.to_dict()``) is a public, versioned contract; ``"schema": 1``. Its keys:

- ``losses``: ``[{name, location, node}]``
- ``params``: ``[{name, shape, module, optimizers, reached_by, node, frozen}]``
- ``components``: ``[{losses, params}]``
- ``shared``: ``[{losses, params, nodes}]``
- ``detached``: ``[{name, kind, severity, optimizers, reason, fix, node}]``; ``kind`` is
  ``unreached`` or ``reentry_leaf``
- ``frozen``: ``[{name, module, node}]``
- ``freed``: ``[{node, op, module, losses, severity, reason, fix}]``
- ``cuts``: ``[{kind, chain: [{op, location}], location, reentry_location, from: {node, op,
  module}, to: {node, op, module}, blocked: [{loss, params}], severity, guess, ignored, reason,
  fix}]``
- ``errors``: ``[{kind, message, severity, ...}]``
- ``opaque``: ``[{node, op, module, kind, confirmed, reason}]``: regions graphprobe can't see
  inside (reentrant checkpoint, ``torch.compile``, custom ``autograd.Function``), and whether
  a real backward confirmed what they reach
- ``nodes``, ``edges``: the graph (see :mod:`graphprobe.graph` for the schema)
- ``verdict``: the one-line summary; ``findings``: counts by severity
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from .graph import ProbeGraph
from .locations import short_location as _short

__all__ = ["Report", "SCHEMA_VERSION", "SEVERITIES"]

SCHEMA_VERSION = 1
SEVERITIES = ("error", "warning", "info")


def _join(names: list[str], limit: int = 4) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"


@dataclass
class Report:
    """What :func:`graphprobe.probe` found. ``print(report)`` gives the text report."""

    model: ProbeGraph
    losses: list[dict[str, Any]] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    reaches: dict[str, list[str]] = field(default_factory=dict)
    components: list[dict[str, list[str]]] = field(default_factory=list)
    shared: list[dict[str, Any]] = field(default_factory=list)
    detached: list[dict[str, Any]] = field(default_factory=list)
    frozen: list[dict[str, Any]] = field(default_factory=list)
    freed: list[dict[str, Any]] = field(default_factory=list)
    cuts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    opaque: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- the graph --------------------------------------------------------------------------
    @functools.cached_property
    def graph(self) -> Any:
        """The autograd graph alone as a ``networkx.DiGraph`` (data-flow direction), built once.

        Algorithms on it agree with the report (``nx.ancestors`` of a loss node holds the
        parameters it reaches); cut edges are in :attr:`graph_with_cuts`. Every attribute is
        GraphML-safe; ``G.graph`` holds the verdict, the losses and the schema version. See
        :mod:`graphprobe.nxview`.
        """
        from .nxview import to_networkx

        return to_networkx(self.model, self)

    @functools.cached_property
    def graph_with_cuts(self) -> Any:
        """:attr:`graph` plus the recorder's cut edges (``kind="cut"``), for drawing them.

        Not for reachability: a cut edge carries no gradient. ``graphprobe.nxview.data_edges``
        gives the autograd part back.
        """
        from .nxview import to_networkx

        return to_networkx(self.model, self, cuts=True)

    # -- findings ---------------------------------------------------------------------------
    def findings(self) -> list[dict[str, Any]]:
        """Every finding that carries a severity, ignored cuts left out."""
        out: list[dict[str, Any]] = []
        out += [c for c in self.cuts if not c.get("ignored")]
        out += self.detached + self.freed + self.errors
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
        """The one-line summary that opens the text report."""
        nl = len(self.losses)
        nc = len(self.components)
        head = f"{nl} loss{'es' if nl != 1 else ''}, {nc} component{'s' if nc != 1 else ''}"
        unreached = [d["name"] for d in self.detached if d["kind"] == "unreached" and d["severity"] != "info"]
        starved = set(unreached)
        parts: list[str] = []
        if self.errors:
            parts.append(self.errors[0]["message"].split("\n")[0])
        live = [c for c in self.cuts if not c.get("ignored")]
        live.sort(key=lambda c: SEVERITIES.index(c["severity"]))
        if live and live[0]["severity"] != "info":
            c = live[0]
            cut = f"{c['kind']} cut at {_short(c['location'])}"
            # Say what the cut blocks, unless the params it blocks get no gradient at all (said below).
            blocked = [b for b in c["blocked"] if not set(b["params"]) <= starved]
            if blocked:
                cut += f": {blocked[0]['loss']} does not reach {_join(blocked[0]['params'])}"
            parts.append(cut)
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
            "detached": self.detached,
            "frozen": self.frozen,
            "freed": self.freed,
            "cuts": self.cuts,
            "errors": self.errors,
            "opaque": self.opaque,
            "notes": self.notes,
            "nodes": [g.node_attrs(i) for i in range(len(g))],
            "edges": list(g.iter_edges()),
        }

    def to_json(self, indent: int | None = 1) -> str:
        """The JSON contract as text."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_text(self, color: bool = False) -> str:
        """The text report: verdict, reaches, shared, findings with fixes."""
        from .render.text import render_text

        return render_text(self, color=color)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<graphprobe.Report {self.verdict()!r}>"

    # -- notebooks ---------------------------------------------------------------------------
    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text() if not cycle else repr(self))

    def _svg_or_none(self) -> str | None:
        from .errors import GraphprobeError

        try:
            return self.to_svg()
        except GraphprobeError:
            return None  # no layout engine, or too big to lay out: the text still shows

    def _repr_svg_(self) -> str | None:
        return self._svg_or_none()

    def _repr_html_(self) -> str:
        import html

        svg = self._svg_or_none() or ""
        # Drop the XML prolog so the SVG can sit inside the notebook's HTML.
        start = svg.find("<svg")
        svg = svg[start:] if start >= 0 else ""
        return (f'<div class="graphprobe"><div style="font-family:sans-serif;font-weight:bold;'
                f'margin:4px 0">{html.escape(self.verdict())}</div>{svg}'
                f'<details><summary>report</summary><pre>{html.escape(self.to_text())}</pre></details></div>')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        bundle = {"text/plain": self.to_text(), "text/html": self._repr_html_()}
        svg = self._svg_or_none()
        if svg:
            bundle["image/svg+xml"] = svg
        return bundle

    def to_dot(self, **options: Any) -> str:
        """The graph in Graphviz DOT: module clusters, cut edges in red, a legend."""
        from .render.dot import DotOptions, to_dot

        return to_dot(self, DotOptions(**options))

    def to_svg(self, path: str | None = None, **options: Any) -> str:
        """Lay out with ``dot`` (or ``graphviz-pure``) and return the SVG; write it if ``path``.

        ``options`` are :class:`~graphprobe.render.dot.DotOptions` fields (``title``, ``depth``,
        ``expand``, ``budget`` ...).
        """
        from .render.dot import DotOptions
        from .render.engine import write_atomic
        from .render.image import render_image

        svg = render_image(self, "svg", DotOptions(**options)).decode("utf-8")
        if path is not None:
            write_atomic(path, svg.encode("utf-8"))
        return svg

    def to_html(self, path: str | None = None, **options: Any) -> str:
        """One self-contained HTML page: the graph (pan, zoom), the findings, a node inspector.

        It loads nothing from the network. Written atomically to ``path`` if given; ``options``
        are :class:`~graphprobe.render.dot.DotOptions` fields, as for :meth:`to_svg`.
        """
        from .render.engine import write_atomic
        from .render.html import render_html

        page = render_html(self, **options)
        if path is not None:
            write_atomic(path, page.encode("utf-8"))
        return page

    def to_png(self, path: str, **options: Any) -> None:
        """Lay out and write a PNG to ``path`` (atomically)."""
        from .render.dot import DotOptions
        from .render.engine import write_atomic
        from .render.image import render_image

        write_atomic(path, render_image(self, "png", DotOptions(**options)))
