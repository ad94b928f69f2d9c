"""The findings of one graph: cuts judged by the severity policy, what they starve, root causes.

Ids in, typed findings out (:mod:`graphprobe.model.findings`); the graph is read, never changed
(the cut edges to draw are returned, for the caller to put in the report's graph). Severity is
decided in :mod:`.severity` and every text comes from :mod:`.messages`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import AbstractSet as Set
from typing import Any, Sequence

from ..model.graph import ProbeGraph
from ..locations import short_location
from ..model.findings import (Cause, Cut, Freed, RebuiltLeaf, ScriptError, Starved, Unreached, severity_rank,
                              worst)
from . import messages as M
from .reach import _bits, upstream
from .severity import CutFacts, judge_cut

__all__ = ["CutInput", "Findings", "judge_cuts", "unreached_findings", "leaf_findings", "freed_findings",
           "describe_errors", "build_causes"]

#: ops where a value that came back as a constant is only added to (or subtracted from) the rest
_ADDITIVE = frozenset({"AddBackward0", "AddBackward1", "SubBackward0", "SubBackward1", "RsubBackward0",
                       "RsubBackward1"})
_DOWNSTREAM_BUDGET = 4096  # nodes looked at below a re-entry to tell module input from loss arithmetic


@dataclass
class CutInput:
    """A cut as the recorder (or a value-match guess) gives it: node ids and the record's facts."""

    sources: list[int]
    dst: int
    kind: str
    chain: list[tuple[str, str | None]]
    location: str | None
    reentry_location: str | None
    guess: bool = False
    ignored: bool = False
    made_requires_grad: bool = False
    #: node id of the leaf the data came back as, when it was made to require grad
    leaf: int | None = None
    #: a text that replaces the policy's reason (a guessed link says what it matched)
    note: str = ""


@dataclass
class Findings:
    """Everything the analysis found, typed, plus the cut edges to draw."""

    cuts: list[Cut] = field(default_factory=list)
    detached: list[Any] = field(default_factory=list)
    freed: list[Freed] = field(default_factory=list)
    errors: list[ScriptError] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    cut_edges: list[tuple[int, int, int]] = field(default_factory=list)
    #: per cut, the nodes upstream of its sources (what it can starve)
    upstream: list[set[int]] = field(default_factory=list)
    #: per input cut (in the order given), the index of the cut it became
    index_of_input: list[int] = field(default_factory=list)


def _top(m: str | None) -> str | None:
    return m.split(".")[0] if m else None


def _entered(src: str | None, dst: str | None) -> str | None:
    """The module path ``dst`` enters, one level below what it shares with ``src``."""
    if dst is None:
        return None
    a, b = (src or "").split("."), dst.split(".")
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return ".".join(b[:k + 1]) if k < len(b) else dst


def near_module(g: ProbeGraph, v: int, producers: list[list[int]]) -> str | None:
    """The module of ``v``, or of the nearest node upstream of it that has one (256 nodes at most)."""
    if g.module[v] is not None:
        return g.module[v]
    seen, queue = {v}, [v]
    for u in queue:
        if g.module[u] is not None:
            return g.module[u]
        if len(seen) < 256:
            for p in producers[u]:
                if p not in seen:
                    seen.add(p)
                    queue.append(p)
    return None


class _Ctx:
    """Indexes over the graph built once for all cuts."""

    def __init__(self, g: ProbeGraph, masks: list[int], loss_steps: Sequence[set[str] | None]) -> None:
        self.g = g
        self.masks = masks
        self.loss_steps = list(loss_steps)
        self.producers = g.producers()
        cons: list[list[int]] = [[] for _ in range(len(g.kind))]
        for s, d in zip(g.src, g.dst):
            cons[s].append(d)
        self.consumers = cons
        self.params = [v for v in g.nodes_of_kind("param") if v not in g.frozen]
        self.trainable = {v for v in self.params if v in g.optimizers or g.module[v] is not None}
        # loss index -> tops of the trainable parameters it reaches
        self.loss_tops: list[set[str]] = [set() for _ in g.losses]
        for v in self.trainable:
            t = _top(g.module[v] or g.label[v])
            for i in _bits(masks[v]):
                if i < len(self.loss_tops) and t:
                    self.loss_tops[i].add(t)

    def reaches_module(self, params: Sequence[int], top: str) -> bool:
        """Whether data from ``params`` flows, through autograd edges, into an op of module ``top``
        (or of a module inside it).

        A GAN's generator output feeds the discriminator uncut in the generator step. O(V + E).
        """
        g = self.g
        seen = set(params)
        queue = deque(params)
        while queue:
            v = queue.popleft()
            m = g.module[v]
            if g.kind[v] == "op" and m is not None and (m == top or m.startswith(top + ".")):
                return True
            for c in self.consumers[v]:
                if c not in seen:
                    seen.add(c)
                    queue.append(c)
        return False

    def downstream_module(self, d: int) -> str | None:
        """Module of the first op below ``d`` (itself included) that takes a trainable parameter."""
        g, trainable = self.g, self.trainable
        seen, queue = {d}, deque([d])
        while queue and len(seen) < _DOWNSTREAM_BUDGET:
            v = queue.popleft()
            for p in self.producers[v]:
                if p in trainable:
                    return g.module[v] or g.module[p] or g.label[p].rsplit(".", 1)[0]
            for c in self.consumers[v]:
                if c not in seen:
                    seen.add(c)
                    queue.append(c)
        return None


def judge_cuts(g: ProbeGraph, masks: list[int], cuts: Sequence[CutInput],
               loss_steps: Sequence[set[str] | None] = (), consumed: Set[int] = frozenset()) -> Findings:
    """Judge every cut, merge repeats of one site, and order them by severity.

    Parameters
    ----------
    g, masks
        The graph and its loss bitsets.
    cuts
        The cuts, as node ids.
    loss_steps
        Per loss, the optimizers whose step follows it (None: no step was recorded).
    consumed
        Leaf nodes whose gradient the script uses.

    Notes
    -----
    Complexity: O(V + E) per cut for its upstream search, plus O(V + E) once for the indexes.
    """
    ctx = _Ctx(g, masks, loss_steps)
    judged: list[tuple[Cut, list[int], int, set[int]]] = []
    for c in cuts:
        judged.append(_judge_one(ctx, c, consumed))
    group_of: list[tuple[Any, ...]] = []
    # One entry per site: the repeats of a loop (16 steps of `R - value.item()`) are one cut.
    groups: dict[tuple[Any, ...], list[tuple[Cut, list[int], int, set[int]]]] = {}
    for item in judged:
        cut = item[0]
        key = (cut.kind, cut.location, cut.reentry_location, cut.severity, cut.guess, cut.role,
               cut.from_.get("module"), cut.to.get("module"))
        groups.setdefault(key, []).append(item)
        group_of.append(key)
    merged: list[tuple[Cut, list[tuple[int, int]], set[int]]] = []
    keys = list(groups)
    for items in groups.values():
        first = items[0][0]
        blocked: dict[str, list[str]] = {}
        for cut, _, _, _ in items:
            for b in cut.blocked:
                have = blocked.setdefault(b["loss"], [])
                have.extend(p for p in b["params"] if p not in have)
        first.blocked = [{"loss": k, "params": v} for k, v in blocked.items()]
        first.count = len(items)
        first.sources = list(dict.fromkeys(s for cut, _, _, _ in items for s in cut.sources))
        edges = [(s, d) for _, srcs, d, _ in items for s in srcs]
        up = set().union(*(u for _, _, _, u in items))
        merged.append((first, edges, up))
    order = sorted(range(len(merged)), key=lambda i: (merged[i][0].ignored, severity_rank(merged[i][0].severity)))
    new_index = {keys[old]: new for new, old in enumerate(order)}
    merged = [merged[i] for i in order]
    out = Findings()
    out.index_of_input = [new_index[k] for k in group_of]
    for ci, (cut, edges, _) in enumerate(merged):
        out.cuts.append(cut)
        out.cut_edges.extend((s, d, ci) for s, d in dict.fromkeys(edges))
    out.upstream = [u for _, _, u in merged]
    return out


def _judge_one(ctx: _Ctx, c: CutInput, consumed: Set[int]) -> tuple[Cut, list[int], int, set[int]]:
    g, masks = ctx.g, ctx.masks
    srcs, d = c.sources, c.dst
    up_nodes: set[int] = set()
    for s in srcs:
        up_nodes.update(upstream(g, s))
    up_params = g.in_param_order(v for v in up_nodes if v in ctx.trainable)
    src_mod = near_module(g, srcs[0], ctx.producers)
    dst_mod = g.module[d]
    down_mod = ctx.downstream_module(d)
    down_top = _top(down_mod)
    role = "module_input" if down_mod is not None else "loss_arithmetic"
    if role == "loss_arithmetic" and g.op[d] in _ADDITIVE:
        # `loss = BCE + KLD.item()`: a constant added to the loss shifts it and trains nothing.
        role = "loss_term"
    behind = _bits(masks[d])
    blocked: list[dict[str, Any]] = []
    blocked_loss_idx = []
    for i in behind:
        missing = [g.label[v] for v in up_params if not masks[v] >> i & 1]
        if missing:
            blocked.append({"loss": g.label[g.losses[i]], "params": missing})
            blocked_loss_idx.append(i)
    blocked_set = set(blocked_loss_idx)
    trained_by = [g.label[g.losses[i]] for i in range(len(g.losses))
                  if i not in blocked_set and g.losses[i] not in g.composite
                  and any(masks[v] >> i & 1 for v in up_params)]
    # What the cut keeps from the losses behind it: trained by some other loss, or by none at all.
    cut_off = [v for v in up_params if any(not masks[v] >> i & 1 for i in blocked_loss_idx)]
    upstream_trained = any(masks[v] for v in cut_off) if cut_off else any(masks[v] for v in up_params)
    # The module the data enters, at the depth where its path parts from the upstream module's
    # (model.transformer -> model.lm_head enters "model.lm_head"; G -> D enters "D").
    up_top = _top(src_mod)
    enter = _entered(src_mod, down_mod)
    through = False
    if enter is not None and blocked:
        through = ctx.reaches_module(up_params, enter)
    meant: bool | None = None
    if blocked_loss_idx and ctx.loss_steps:
        known = [st for i in blocked_loss_idx if i < len(ctx.loss_steps)
                 and (st := ctx.loss_steps[i]) is not None]
        if known:
            held = {o for v in up_params if not all(masks[v] >> i & 1 for i in blocked_loss_idx)
                    for o in g.optimizers.get(v, [])}
            meant = any(bool(s & held) for s in known) if held else None
    facts = CutFacts(
        kind=c.kind, role=role, same_module=src_mod is not None and src_mod == (down_mod or dst_mod),
        trainable_upstream=bool(up_params), blocked=bool(blocked), upstream_trained=upstream_trained,
        through_module=through, meant=meant,
        rebuilt_consumed=c.made_requires_grad and c.leaf is not None and c.leaf in consumed, guess=c.guess,
        held_starved=any(masks[v] == 0 and v in g.optimizers for v in (cut_off or up_params)))
    verdict = judge_cut(facts)
    chain_ops = [op for op, _ in c.chain]
    location, exit_loc = c.location, None
    if c.kind == "no_grad":
        with_loc = M.enclosing_no_grad(c.location)
        if with_loc is not None:
            location, exit_loc = with_loc, c.location
    line = M.source_line(location)
    reason = M.cut_reason(verdict.key, c.kind, up_top, _top(dst_mod) or down_top, [b["loss"] for b in blocked],
                          trained_by)
    if c.note:  # a guessed link says what it matched, and that it is a guess, once
        reason = c.note + "; " + reason.replace("; linked by value only (a guess), so at most a warning", "")
    cut = Cut(
        severity=verdict.severity, reason=reason,
        fix=M.cut_fix(c.kind, verdict.severity, chain_ops, location if exit_loc else None, line, role),
        kind=c.kind, chain=[{"op": op, "location": loc} for op, loc in c.chain], location=location,
        reentry_location=c.reentry_location,
        from_={"node": srcs[0], "op": g.op[srcs[0]] or g.label[srcs[0]], "module": src_mod},
        sources=list(srcs), to={"node": d, "op": g.op[d] or g.label[d], "module": dst_mod},
        blocked=blocked, guess=c.guess, ignored=c.ignored, line=line, exit_location=exit_loc, role=role,
    )
    return cut, list(srcs), d, up_nodes


def unreached_findings(g: ProbeGraph, masks: list[int], cuts: Sequence[Cut], upstream_sets: Sequence[set[int]],
                       unreached: Sequence[int], hides: bool, truth: bool, opaque_ops: str) -> list[Unreached]:
    """One finding per parameter no loss reaches, pointing at the most severe cut that starves it.

    When an intended cut and a real one both sit above a parameter, the real one is its cut.
    Complexity: O(P x C) for P parameters and C cuts.
    """
    top_of = {v: _top(g.module[v] or g.label[v]) for v in g.nodes_of_kind("param")}
    used_tops = {top_of[v] for v in top_of if masks[v] or v in g.optimizers}
    order = sorted(range(len(cuts)), key=lambda i: (cuts[i].ignored, severity_rank(cuts[i].severity)))
    out: list[Unreached] = []
    for v in unreached:
        opts = list(g.optimizers.get(v, []))
        if hides and not truth:
            out.append(Unreached(
                severity="info", name=g.label[v], optimizers=opts, module=g.module[v], node=v,
                reason=f"can't tell: the graph holds a region graphprobe can't see inside ({opaque_ops}), which may use it",
                fix="probe before backward (so a real backward can confirm), or use "
                    "torch.utils.checkpoint(..., use_reentrant=False), which autograd can see through"))
            continue
        ci = next((i for i in order if v in upstream_sets[i]), None)
        if not opts and ci is not None and cuts[ci].severity == "info" and not cuts[ci].ignored:
            c = cuts[ci]
            out.append(Unreached(
                severity="info", name=g.label[v], optimizers=[], module=g.module[v], node=v, cut=ci,
                reason=(f"no optimizer holds it and it is used only through the intended {c.kind} cut at "
                        f"{short_location(c.location)} (a target network, a constant)"),
                fix="nothing to fix if it is not meant to train"))
            continue
        if not opts and top_of.get(v) not in used_tops and ci is None:
            out.append(Unreached(
                severity="info", name=g.label[v], optimizers=[], module=g.module[v], node=v,
                reason=f"module {top_of[v]} is not used by any probed loss and no optimizer holds it",
                fix="nothing to fix if it is unused on purpose (a template layer, an eval-only head)"))
            continue
        reason = "no probed loss reaches it"
        if ci is not None:
            c = cuts[ci]
            losses = ", ".join(b["loss"] for b in c.blocked) or "the losses"
            reason += f"; the path to {losses} was cut at {short_location(c.location)} ({c.kind})"
        if opts:
            reason += (f"; {', '.join(opts)} hold{'s' if len(opts) == 1 else ''} it, so "
                       f"{'its' if len(opts) == 1 else 'their'} step() does nothing to it")
        out.append(Unreached(
            severity="error" if opts else "warning", name=g.label[v], optimizers=opts, module=g.module[v], node=v,
            cut=ci, reason=reason, fix=cuts[ci].fix if ci is not None else M.FIX_UNREACHED))
    return out


def leaf_findings(g: ProbeGraph, masks: list[int], cuts: Sequence[Cut], leaf_cut: dict[int, int],
                  confirmed: set[int], consumed: set[int], recorded: bool) -> list[RebuiltLeaf]:
    """One finding per leaf rebuilt outside autograd and made to require grad.

    With a recorded cut the leaf takes that cut's severity (it is the same fault, seen twice);
    without a recording it is a warning that the graph is cut there, never silence.
    """
    out: list[RebuiltLeaf] = []
    for v in g.nodes_of_kind("reentry_leaf"):
        losses = [g.label[g.losses[i]] for i in _bits(masks[v])]
        ci = leaf_cut.get(v)
        name = g.label[v]
        if v in consumed:
            sev, reason = "info", (f"{name} is rebuilt outside autograd and made to require grad, and its gradient "
                                   "is used (an inputs= of autograd.grad, or .grad read): intended")
            fix = "nothing to fix"
        elif ci is not None and cuts[ci].guess and cuts[ci].location is None:
            c = cuts[ci]
            sev = c.severity
            src = c.from_.get("module") or c.from_.get("op")
            reason = (f"{name} requires grad but belongs to no module or optimizer: the graph is cut here, so "
                      f"{M.join_capped(losses, 3) or 'its loss'} get{'s' if len(losses) == 1 else ''} no gradient "
                      f"upstream of it. It matches a tensor saved in another loss's graph, so the guessed cut is "
                      f"from {src} (run under graphprobe.trace(), or `graphprobe render script.py`, to confirm)")
            fix = c.fix
        elif ci is not None:
            c = cuts[ci]
            sev = c.severity
            reason = (f"{name} was rebuilt from data that left autograd at {short_location(c.location)} ({c.kind}) and "
                      f"made to require grad: {', '.join(losses) or 'its loss'} stop{'s' if len(losses) == 1 else ''} "
                      "at this leaf")
            fix = c.fix
        else:
            sev = "warning"
            how = ("the recorder saw it re-enter autograd" if v in confirmed else
                   "run the forward under graphprobe.trace(), or `graphprobe render script.py`, to see where it came from")
            reason = (f"{name} requires grad but belongs to no module or optimizer: the graph is cut here, so "
                      f"{M.join_capped(losses, 3) or 'its loss'} get{'s' if len(losses) == 1 else ''} no gradient "
                      f"upstream of it ({how})")
            fix = ("keep the computation in torch between the two modules (no .numpy(), .item(), .tolist(), .data "
                   "or .detach()); or drop requires_grad_(True) if the cut is intended")
        out.append(RebuiltLeaf(severity=sev, reason=reason, fix=fix, name=name, optimizers=list(g.optimizers.get(v, [])),
                               module=None, node=v, cut=ci, consumed=v in consumed, losses=losses))
    return out


def freed_findings(g: ProbeGraph, masks: list[int]) -> list[Freed]:
    """One error per node an earlier backward freed. Complexity: O(F x L)."""
    out = []
    for v in sorted(g.freed):
        losses = [g.label[g.losses[i]] for i in _bits(masks[v])]
        mod = g.module[v]
        out.append(Freed(severity="error", node=v, op=g.op[v], module=mod, losses=losses, fix=M.FIX_FREED,
                         reason=(f"an earlier backward freed the saved tensors of {g.op[v]}"
                                 + (f" in {mod}" if mod else "")
                                 + f"; a backward of {', '.join(losses) or 'a loss'} through it will fail")))
    return out


def describe_errors(g: ProbeGraph, errors: Sequence[ScriptError]) -> list[ScriptError]:
    """Fill the runner's diagnoses with what the graph names: a backward_twice's freed nodes."""
    for err in errors:
        if err.kind != "backward_twice":
            continue
        nodes = sorted(g.freed)
        err.nodes = [{"node": n, "op": g.op[n], "module": g.module[n]} for n in nodes]
        err.modules = sorted({m for n in nodes if (m := g.module[n])})
        ops = sorted({g.op[n] or "" for n in nodes})
        fb = err.freed_by
        by = f"{fb['loss']}.backward() at {short_location(fb.get('location'))}" if fb else "an earlier backward"
        mods = f" of {', '.join(err.modules)}" if err.modules else ""
        err.message = (f"backward of {err.loss} at {short_location(err.location)} failed: it needs the saved "
                       f"tensors of {len(nodes)} node{'s' if len(nodes) != 1 else ''}{mods} ({', '.join(ops)}), "
                       f"which {by} already freed")
    return list(errors)


def _starved_groups(g: ProbeGraph, names: Sequence[str], losses: Sequence[str]) -> list[Starved]:
    by_name = {g.label[v]: v for v in g.nodes_of_kind("param")}
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for n in names:
        v = by_name.get(n)
        mod = _top(g.module[v] if v is not None else None) or n.split(".")[0]
        ps, opts = groups.setdefault(mod, ([], []))
        ps.append(n)
        for o in (g.optimizers.get(v, []) if v is not None else []):
            if o not in opts:
                opts.append(o)
    return [Starved(m, ps, opts, list(losses)) for m, (ps, opts) in groups.items()]


def build_causes(g: ProbeGraph, f: Findings) -> list[Cause]:
    """One entry per root cause, most severe first; sets ``caused_by`` on what each explains.

    A cut is the cause of the parameters it blocks, of the leaf rebuilt after it and of the
    unreached parameters that point at it; the freed nodes are explained by a failed second
    backward when there is one. Complexity: O(findings).
    """
    causes: list[Cause] = []
    cut_cause: dict[int, int] = {}
    for i, c in enumerate(f.cuts):
        if c.ignored:
            continue
        names: list[str] = []
        losses: list[str] = []
        for b in c.blocked:
            losses.append(b["loss"])
            names.extend(p for p in b["params"] if p not in names)
        what = f"{c.kind} cut" + (" (a guess)" if c.guess else "")
        count = f"{c.count}× at " if c.count > 1 else "at "
        title = (f"{what} {count}{short_location(c.location)}" if c.location else
                 f"guessed cut from {c.from_.get('module') or c.from_.get('op')} (a rebuilt leaf matches a saved tensor)")
        cause = Cause(severity=c.severity, kind=c.kind, title=title,
                      location=c.location, line=c.line, fix=c.fix, reason=c.reason, count=c.count,
                      starves=_starved_groups(g, names, losses), finding=("cuts", i), guess=c.guess)
        cut_cause[i] = len(causes)
        causes.append(cause)
    rest: dict[str, list[int]] = {}
    for j, d in enumerate(f.detached):
        ci = d.cut
        if ci is not None and ci in cut_cause:
            k = cut_cause[ci]
            d.caused_by = k
            causes[k].explains.append(("detached", j))
            if not causes[k].guess:  # a guess stays at most a warning, whatever it explains
                causes[k].severity = worst([causes[k].severity, d.severity])
            continue
        if d.severity == "info" and d.kind == "unreached":
            continue
        if d.kind == "reentry_leaf":
            d.caused_by = len(causes)
            causes.append(Cause(severity=d.severity, kind="reentry_leaf",
                                title=f"{d.name} rebuilt outside autograd", location=None, line="", fix=d.fix,
                                reason=d.reason, finding=("detached", j)))
            continue
        rest.setdefault(_top(d.module or d.name) or d.name, []).append(j)
    for mod, idx in rest.items():
        ds = [f.detached[j] for j in idx]
        names = [d.name for d in ds]
        cause = Cause(severity=worst(d.severity for d in ds), kind="unreached",
                      title=f"{M.join_capped(names)} get{'s' if len(names) == 1 else ''} no gradient",
                      location=None, line="", fix=ds[0].fix, reason=ds[0].reason,
                      starves=_starved_groups(g, names, []), finding=("detached", idx[0]))
        for j in idx:
            f.detached[j].caused_by = len(causes)
            cause.explains.append(("detached", j))
        causes.append(cause)
    twice = None
    for j, e in enumerate(f.errors):
        e.caused_by = len(causes)
        causes.append(Cause(severity=e.severity, kind=e.kind, title=e.message.split("\n")[0][:M.MAX_LINE],
                            location=e.location, line=M.source_line(e.location), fix=e.fix, reason=e.reason,
                            finding=("errors", j)))
        if e.kind == "backward_twice":
            twice = e.caused_by
    if f.freed:
        if twice is not None:
            k = twice
        else:
            k = len(causes)
            fr = f.freed[0]
            causes.append(Cause(severity="error", kind="freed",
                                title=f"{len(f.freed)} node{'s' if len(f.freed) != 1 else ''} freed by an earlier backward",
                                location=None, line="", fix=fr.fix, reason=fr.reason, finding=("freed", 0)))
        for j, fr in enumerate(f.freed):
            fr.caused_by = k
            causes[k].explains.append(("freed", j))
    # Most severe first; a stable sort keeps cuts before what they explain.
    order = sorted(range(len(causes)), key=lambda i: severity_rank(causes[i].severity))
    remap = {old: new for new, old in enumerate(order)}
    for item in list(f.detached) + list(f.freed) + list(f.errors):
        if item.caused_by is not None:
            item.caused_by = remap[item.caused_by]
    return [causes[i] for i in order]
