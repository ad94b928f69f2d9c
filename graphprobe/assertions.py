"""``assert_grad_flow``: a one-line check, for the tests of training code, that gradient flows."""
from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from .errors import ProbeInputError
from .locations import short_location
from .record.names import collect_known, frame_namespaces, name_of, unique_name
from .probing import _check_losses, build_report

__all__ = ["assert_grad_flow"]

_MAX_NAMED = 8  # starved parameters named one a line; the rest are counted by module


def assert_grad_flow(loss: Any, *targets: Any) -> None:
    """Raise ``AssertionError`` unless ``loss`` sends gradient to every parameter of ``targets``.

    Parameters
    ----------
    loss : torch.Tensor
        The loss, before its backward.
    *targets : nn.Module or torch.Tensor
        Modules (all their trainable parameters) or parameters that must receive a gradient.
        With none, every parameter of the modules (and optimizers) in the caller's frame.

    Raises
    ------
    ProbeInputError
        A target is not a module or a tensor, or, with no targets, the caller's frame holds no
        parameters to check.
    AssertionError
        Listing each starved parameter, the optimizers that hold it, and the cut that starved it
        (when a :func:`graphprobe.trace` was recording).

    Notes
    -----
    Parameters with ``requires_grad=False`` are frozen on purpose and are not checked.
    Complexity: that of :func:`graphprobe.probe`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 1)
    >>> assert_grad_flow(net(torch.ones(2, 3)).sum(), net)
    """
    # pytest leaves this frame out of a failure's traceback: the test's line and the message
    # are what a reader needs, not 60 lines of graphprobe's source.
    __tracebackhide__ = True
    (loss,) = _check_losses([loss])
    frame = sys._getframe(1)
    try:
        params: dict[str, Any] | None = None
        checked: set[str] | None = None  # the report names of the targets' parameters
        if targets:
            namespaces = frame_namespaces(frame)
            ids: set[int] = set()
            names: list[str] = []
            for i, t in enumerate(targets):
                if not isinstance(t, (nn.Module, torch.Tensor)):
                    raise ProbeInputError(
                        f"assert_grad_flow target {i} is a {type(t).__name__}; give nn.Modules or parameters.")
                names.append(name_of(t, namespaces)
                             or (type(t).__name__.lower() if isinstance(t, nn.Module) else f"param[{i}]"))
            # Two targets of one name (m.enc and m.dec are both "linear") each keep their own: the
            # target index is appended to each (linear0, linear1), then "#2"... until it is free.
            params = {}
            for i, (nm, t) in enumerate(zip(names, targets)):
                if names.count(nm) > 1:
                    nm = f"{nm}{i}"
                nm = unique_name(nm, params)
                params[nm] = t
                if isinstance(t, nn.Module):
                    ids.update(id(p) for p in t.parameters())
                else:
                    ids.add(id(t))
            # The same names the report gets (collect_known is deterministic): decide by identity,
            # not by name prefix, which other parameters (an optimizer's, "net.weight#2") may share.
            checked = {info.name for pid, info in collect_known(frame, params).params.items() if pid in ids}
        report = build_report([loss], frame, params=params, names=["loss"])
    finally:
        del frame
    if checked is None and not report.params:
        raise ProbeInputError("assert_grad_flow found no parameters to check: pass the modules or parameters, "
                              "e.g. assert_grad_flow(loss, model)")
    reached = set(report.reaches.get("loss", []))
    starved = [p for p in report.params if not p["frozen"] and p["name"] not in reached
               and (checked is None or p["name"] in checked)]
    if not starved:
        return
    detached = {d["name"]: d for d in report.detached}
    lines = [f"gradient does not reach {len(starved)} parameter{'s' if len(starved) != 1 else ''}:"]
    cuts_seen: list[int] = []
    rest: dict[str, list[str]] = {}  # past the first _MAX_NAMED, by top-level module
    for k, p in enumerate(starved):
        d = detached.get(p["name"])
        cut_i = d.get("cut") if d else None
        if cut_i is not None and cut_i not in cuts_seen:
            cuts_seen.append(cut_i)
        if k >= _MAX_NAMED:
            rest.setdefault((p["module"] or p["name"]).split(".")[0], []).append(p["name"])
            continue
        held = f" (held by {', '.join(p['optimizers'])})" if p["optimizers"] else ""
        line = f"  {p['name']}{held}"
        if cut_i is not None:
            c = report.cuts[cut_i]
            chain = " -> ".join(s["op"] for s in c["chain"])
            loc = c["location"] or "?"
            line += f": cut at {short_location(loc)} ({chain})"
        elif report.opaque and d and d["severity"] == "info":
            line += ": can't tell, the graph holds a region graphprobe can't see inside"
        lines.append(line)
    for mod, names in rest.items():
        lines.append(f"  … and {len(names)} more of {mod}")
    # Each cut once: its line as written, and what to write instead.
    for ci in cuts_seen[:3]:
        c = report.cuts[ci]
        if c.get("line"):
            lines.append(f"  {short_location(c['location'])}  {c['line']}"[:160])
        if c.get("fix"):
            lines.append(f"    fix: {c['fix']}"[:160])
    if not any(not c.get("guess") for c in report.cuts):
        lines.append("(run the forward inside graphprobe.trace() to see where the graph was cut)")
    raise AssertionError("\n".join(lines))
