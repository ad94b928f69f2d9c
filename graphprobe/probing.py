"""``probe(*losses)``: walk the losses' graph, run the analyses, and return a :class:`Report`.

This module is the pipeline: names (:mod:`.record.names`), the walk (:mod:`.walk`), the
recorder's cuts (:mod:`.record`) turned into node ids, then the build step
(:func:`graphprobe.analysis.build.build`). No tensor or autograd node
outlives the call: what the report keeps is strings, numbers and node ids.
"""
from __future__ import annotations

import contextlib
import gc
import sys
import types
from typing import Any, Mapping, Sequence

import torch

from . import analysis as A
from .errors import ProbeInputError
from .model.graph import ProbeGraph, TensorMeta
from .record.names import Known, collect_known, frame_namespaces, name_hidden, name_of, unique_name
from .analysis.build import build
from .analysis.findings import CutInput
from .model.findings import ScriptError
from .report import Report
from .walk import CutSides, Root, walk

__all__ = ["probe", "build_report", "frame_tensors"]



def _check_losses(losses: Sequence[Any]) -> list[torch.Tensor]:
    flat: list[Any] = []
    for x in losses:
        if isinstance(x, (list, tuple)):
            flat.extend(x)
        else:
            flat.append(x)
    if not flat:
        raise ProbeInputError(
            "probe() needs at least one loss tensor, e.g. probe(loss1, loss2). "
            "Call it after the forward pass and before backward."
        )
    for i, t in enumerate(flat):
        if not isinstance(t, torch.Tensor):
            raise ProbeInputError(
                f"probe() argument {i} is a {type(t).__name__}, not a tensor. Pass the loss tensors "
                "themselves (not loss.item() or a float)."
            )
        if t.grad_fn is None and not t.requires_grad:
            raise ProbeInputError(
                f"probe() argument {i} has no grad_fn and does not require grad: it was computed under "
                "torch.no_grad() / inference_mode, or from detached data (.detach(), .data, .numpy(), "
                ".item()). No gradient can flow from it; compute it with grad enabled."
            )
    return flat


def frame_tensors(frame: types.FrameType | None) -> tuple[dict[Any, str], dict[int, str]]:
    """``grad_fn -> name`` for non-leaf tensors and ``id -> name`` for grad leaves in the frame."""
    fn_names: dict[Any, str] = {}
    leaf_names: dict[int, str] = {}
    for ns in frame_namespaces(frame):
        for k, v in list(ns.items()):
            if k.startswith("_") or not isinstance(v, torch.Tensor):
                continue
            fn = v.grad_fn
            if fn is not None:
                fn_names.setdefault(fn, k)
            elif v.requires_grad:
                leaf_names.setdefault(id(v), k)
    return fn_names, leaf_names


def probe(*losses: Any, params: Any = None, names: Sequence[str] | Mapping[int, str] | None = None,
          trace: Any = None, check_freed: bool = True, confirm: bool = False) -> Report:
    """Walk the graph behind ``losses`` and report reachability, sharing, detached leaves and cuts.

    Parameters
    ----------
    *losses : torch.Tensor
        The loss tensors, before their backward (or after it, to see what it freed).
    params : dict or list of nn.Module, optional
        ``{"net1": net1, ...}`` or ``[net1, net2]``. By default the ``nn.Module`` objects and
        optimizers in the caller's frame are used to name parameters.
    names : list of str, optional
        Names for the losses. By default the caller's variable names (``loss1``).
    trace : graphprobe.Trace, optional
        A recorder whose cuts to include; the active one is used when this is None.
    check_freed : bool
        Look for nodes whose saved tensors an earlier backward freed.
    confirm : bool
        When the graph holds a region graphprobe can't see inside (a custom
        ``autograd.Function``, a ``torch.compile`` region), confirm what each loss reaches with
        one ``torch.autograd.grad`` per loss. Off by default: that runs the user's backward
        code and hooks (gradients are returned, never accumulated into ``.grad``; RNG state is
        restored). ``graphprobe render`` confirms for free, from the script's own backward.

    Returns
    -------
    Report

    Raises
    ------
    graphprobe.errors.ProbeInputError
        With no loss, a non-tensor, or a tensor that carries no graph.

    Notes
    -----
    Complexity: O(V + E) for the walk and each analysis, V nodes and E edges, with bitsets over
    the losses for reachability.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 1)
    >>> loss = net(torch.ones(2, 3)).sum()
    >>> probe(loss).reaches
    {'loss': ['net.weight', 'net.bias']}
    """
    flat = _check_losses(losses)
    frame = sys._getframe(1)
    try:
        return build_report(flat, frame, params=params, names=names, trace=trace, check_freed=check_freed,
                            confirm=confirm)
    finally:
        del frame


def build_report(losses: Sequence[torch.Tensor], frame: types.FrameType | None, *, params: Any = None,
                 names: Sequence[str] | Mapping[int, str] | None = None, trace: Any = None,
                 check_freed: bool = True, terms: Sequence[Root] = (),
                 locations: Sequence[str | None] | None = None,
                 freed_fns: Sequence[Any] = (), var_names: tuple[dict, dict] | None = None,
                 confirm: bool | None = None,
                 confirmed: Sequence[set[int] | None] | None = None,
                 errors: Sequence[ScriptError] = (), unjudged: set[int] = frozenset(),  # type: ignore[assignment]
                 known: Known | None = None) -> Report:
    """Build the report for ``losses`` named from ``frame`` (the runner's entry; see :func:`probe`).

    ``known`` holds names found earlier (the runner's, at each backward of the step); given,
    ``frame`` is not searched again.

    ``terms`` are named parts of a summed loss, ``freed_fns`` autograd nodes known to be freed
    (the runner finds them when a backward fails), ``locations`` where each loss's backward ran.
    ``confirmed`` gives, per loss, the ``id()`` of the parameters a real backward sent a
    gradient to (the runner's parameter hooks); else, when the graph holds regions graphprobe
    can't see inside and ``confirm`` is not False, a ``torch.autograd.grad`` pass finds them.
    ``errors`` are the runner's diagnoses (typed findings), completed from the graph here.
    ``unjudged`` holds the ``id()`` of parameters never to call unreached (their optimizer never
    stepped in the runner's captured step).
    """
    # The walk allocates a few objects per node; the cyclic collector would scan the user's
    # whole heap several times over a 500k-node walk for nothing. Restored on every exit path.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _build(losses, frame, params, names, trace, check_freed, terms, locations, freed_fns,
                      var_names, confirm, confirmed, errors, unjudged, known)
    finally:
        if gc_was_on:
            gc.enable()


def _build(losses: Sequence[torch.Tensor], frame: types.FrameType | None, params: Any,
           names: Sequence[str] | Mapping[int, str] | None, trace: Any, check_freed: bool,
           terms: Sequence[Root], locations: Sequence[str | None] | None, freed_fns: Sequence[Any],
           var_names: tuple[dict, dict] | None, confirm: bool | None,
           confirmed: Sequence[set[int] | None] | None, errors: Sequence[ScriptError] = (),
           unjudged: set[int] = frozenset(),  # type: ignore[assignment]
           earlier: Known | None = None) -> Report:
    from .record.recorder import active_trace, modules_tagged

    tr = trace if trace is not None else active_trace()
    # The live recorder knows every module that ran and optimizer built (a snapshot does not).
    registry = tr if hasattr(tr, "modules_seen") else active_trace()
    # The runner names what each backward saw; by now the script may have rebound its names
    # (word_language_model reloads `model` before the step ends) or left the method.
    known = earlier if earlier is not None else collect_known(frame, params, registry=registry)
    namespaces = frame_namespaces(frame)
    roots: list[Root] = []
    terms = [r for r in terms if all(r.tensor is not t for t in losses)]
    for i, t in enumerate(losses):
        nm: str | None = None
        if isinstance(names, Mapping):
            nm = names.get(i)
        elif names is not None and i < len(names):
            nm = names[i]
        if nm is not None and not isinstance(nm, str):
            raise ProbeInputError(f"names[{i}] is a {type(nm).__name__}; give the losses' names as strings.")
        nm = nm or name_of(t, namespaces) or f"loss[{i}]"
        roots.append(Root(nm, t, locations[i] if locations else None))
    # Unique loss names: a second "loss" becomes "loss#2" (then "#3"... whatever is free).
    taken: set[str] = set()
    for r in list(roots) + list(terms):
        r.name = unique_name(r.name, taken)
        taken.add(r.name)
    fn_names, leaf_names = var_names if var_names is not None else frame_tensors(frame)
    cut_records = tr.cut_records() if tr is not None else []
    sides = []
    for rec in cut_records:
        leaves = [r() for _, r in rec.targets if r is not None]
        sides.append(CutSides(rec.source_fns, [fn for fn, _ in rec.targets],
                              [id(t) for t in leaves if t is not None]))
    reentry_ids = tr.reentry_leaf_ids() if tr is not None else set()
    plain_ids = tr.plain_leaf_ids() if tr is not None else set()

    res = walk(roots, known, cuts=sides, var_names=fn_names, reentry_ids=reentry_ids,
               plain_leaf_ids=plain_ids, check_freed=check_freed, terms=terms,
               read_tags=tr is not None and modules_tagged())
    g = res.graph
    for fn in freed_fns:
        nid = res.fn_node.get(fn)
        if nid is not None:
            g.freed.add(nid)
    # Re-entry leaves take the user's variable name (tmp).
    for tid, nid in res.leaf_node.items():
        if g.kind[nid] in ("reentry_leaf", "leaf") and tid in leaf_names:
            g.name[nid] = leaf_names[tid]
            g.label[nid] = leaf_names[tid]
    _name_hidden_params(g, res, known)
    _add_unwalked_params(g, known, res.leaf_node)
    g.unjudged = {res.leaf_node[i] for i in unjudged if i in res.leaf_node}
    cut_pairs = _map_cuts(g, cut_records, res, known)
    truth: dict[int, set[int]] | None = None
    why_not = ""
    if g.opaque and (confirm or confirmed is not None):
        truth, why_not = _confirm(roots, known, res.leaf_node, confirmed, tr, list(g.opaque.values()))
    elif g.opaque:
        why_not = "pass confirm=True to confirm with a real torch.autograd.grad"
    consumed = {res.leaf_node[i] for i in (tr.consumed_leaf_ids() if tr is not None and
                                           hasattr(tr, "consumed_leaf_ids") else ()) if i in res.leaf_node}
    # Rebuilt leaves (a few) by id, the order the walk met them, without a pass over every node.
    leaf_tensors = {nid: res.fn_of[nid].variable for nid in g.nodes_of_kind("reentry_leaf")
                    if res.fn_of[nid] is not None}
    loss_steps = _loss_steps(roots, tr, namespaces, known.optimizer_ids)
    guesses: list[CutInput] = []
    if not cut_pairs:
        # No recording: link each rebuilt leaf to a saved tensor it equals up to a·x+b.
        guesses = guess_origins(g, res.fn_node, leaf_tensors, res.masks)
    inputs = _cut_inputs(cut_pairs, res.leaf_node) + guesses
    report = build(g, inputs, recorded=bool(cut_pairs),
                   reentry_confirmed={res.leaf_node[i] for i in reentry_ids if i in res.leaf_node},
                   truth=truth, unconfirmed_why=why_not, masks=res.masks, loss_steps=loss_steps,
                   consumed=consumed, errors=errors, report_type=Report)
    if known.uninitialized:
        n = len(known.uninitialized)
        report.notes.append(f"{n} lazy parameter{'s' if n != 1 else ''} not initialised yet, so in no graph "
                            f"and left out: {', '.join(known.uninitialized[:6])}{' …' if n > 6 else ''}")
    del res, known, cut_records, sides, fn_names, leaf_tensors
    return report


def _loss_steps(roots: Sequence[Root], tr: Any, namespaces: Sequence[Mapping[str, Any]],
                optimizer_names: Mapping[int, str] | None = None) -> list[set[str] | None]:
    """Per loss, the optimizers whose step first followed its forward (one block of steps).

    Optimizer steps stepped one after another with no autograd op between them (``opt1.step();
    opt2.step()``) form one block: every loss whose graph was built before the block and after
    the previous one is meant to train what those optimizers hold. None where no step followed.
    """
    steps = tr.optimizer_steps() if tr is not None and hasattr(tr, "optimizer_steps") else []
    if not steps:
        return []
    # The optimizers' names as collect_known gave them (self.opt, opts["g"]), else the frame's.
    names = dict(optimizer_names) if optimizer_names else {
        id(v): k for ns in namespaces for k, v in list(ns.items())
        if isinstance(v, torch.optim.Optimizer) and not k.startswith("_")}
    out: list[set[str] | None] = []
    for r in roots:
        fn = r.tensor.grad_fn
        seq = fn._sequence_nr() if fn is not None else None
        block: set[str] | None = None
        if seq is not None:
            k = next((i for i, (s, _) in enumerate(steps) if s >= seq), None)
            if k is not None:
                block = {names[id(o)] for s, o in steps[k:] if s == steps[k][0] and id(o) in names}
        out.append(block)
    return out


_GUESS_NODE_BUDGET = 10_000  # autograd nodes whose saved tensors one probe compares at most
_GUESS_BLOCK = 1_024  # nodes read between two fits (the search stops at the first block that links)


def guess_origins(g: ProbeGraph, fn_node: Mapping[Any, int], leaves: Mapping[int, torch.Tensor],
                  masks: Sequence[int]) -> list[CutInput]:
    """Guessed cuts: a rebuilt leaf equal, up to ``a·x + b``, to a tensor saved in another loss's graph.

    Autograd keeps forward values as saved tensors (the input MseLossBackward0 saved); a leaf
    rebuilt from one of them through numpy and a scale (seed case 4: ``× 0.5``) still matches it.

    Notes
    -----
    Only rebuilt leaves are compared, only against saved tensors of the same number of elements
    (read raw, so no unpack hook runs), in walk order from the losses, at most
    ``_GUESS_NODE_BUDGET`` nodes, stopping once every leaf is linked: O(N·s) for N nodes with s
    saved slots each, plus O(numel) per same-size candidate, vectorised.
    """
    from .walk.walker import _raw_saved_attrs

    if not leaves:
        return []
    consumer: dict[int, int] = {}
    for s, d in zip(g.src, g.dst):
        if s in leaves and s not in consumer:
            consumer[s] = d
    want: dict[int, list[tuple[int, torch.Tensor]]] = {}
    for nid, t in leaves.items():
        if t.numel() >= 2 and nid in consumer:
            want.setdefault(t.numel(), []).append((nid, t.detach().reshape(-1).double().cpu()))
    if not want:
        return []
    # The nodes are read in walk order (nearest the losses first), a block at a time: each block's
    # candidates (same numel, another loss's graph, each saved tensor once) go through one
    # vectorised affine fit per size, and the search stops once every leaf is linked.
    out: list[CutInput] = []
    linked: set[int] = set()
    leaf_mask = 0
    for nid in leaves:
        leaf_mask |= masks[nid]
    seen_ptr: set[tuple[int, int]] = set()
    n_want = sum(len(ws) for ws in want.values())
    items = iter(fn_node.items())
    for lo in range(0, min(len(fn_node), _GUESS_NODE_BUDGET), _GUESS_BLOCK):
        cands: dict[int, list[tuple[int, str, Any, torch.Tensor]]] = {}
        for _ in range(min(_GUESS_BLOCK, _GUESS_NODE_BUDGET - lo)):
            fn, nid = next(items, (None, -1))
            if fn is None:
                break
            if g.kind[nid] != "op" or (masks[nid] | leaf_mask) == leaf_mask and masks[nid] & leaf_mask:
                continue  # only in the leaves' own graphs: not "another loss's" saved tensor
            for attr in _raw_saved_attrs(fn):
                try:
                    raw = getattr(fn, attr)
                except Exception:
                    continue
                for sv in (raw if isinstance(raw, (list, tuple)) else (raw,)):
                    x = getattr(sv, "data", None)
                    if not isinstance(x, torch.Tensor):
                        continue
                    n = x.numel()
                    if n not in want or x.is_meta:
                        continue
                    key = (x.data_ptr(), n)
                    if key not in seen_ptr:
                        seen_ptr.add(key)
                        cands.setdefault(n, []).append((nid, attr, fn, x))
        for n, group in cands.items():
            for leaf, y in want[n]:
                if leaf in linked:
                    continue
                hit = _first_affine([c for c in group if not masks[c[0]] & masks[leaf]], y)
                if hit is None:
                    continue
                linked.add(leaf)
                out.append(_guessed_cut(g, fn_node, masks, consumer[leaf], leaf, *hit))
        if len(linked) == n_want:
            break
    return out


def _guessed_cut(g: ProbeGraph, fn_node: Mapping[Any, int], masks: Sequence[int], dst: int, leaf: int,
                 cand: tuple[int, str, Any, torch.Tensor], a: float, b: float) -> CutInput:
    """The guessed cut for ``leaf``, from the node that made the saved tensor it matches."""
    nid, attr, fn, _ = cand
    src = nid
    if "result" not in attr:  # an input of fn: the node that produced it
        nxt = [fn_node.get(m) for m, _ in fn.next_functions if m is not None]
        src = next((m for m in nxt if m is not None and g.kind[m] == "op"), nid)
    what = attr[len("_raw_saved_"):]
    expr = f"{a:.3g}·x" + (f" + {b:.3g}" if abs(b) > 1e-12 else "")
    losses = ", ".join(g.label[g.losses[i]] for i in A.reach._bits(masks[nid]))
    return CutInput([src], dst, "value_match", [("saved " + what + " of " + (g.op[nid] or "?"), None), (expr, None)],
                    None, None, guess=True, made_requires_grad=True, leaf=leaf,
                    note=(f"{g.label[leaf]} = {expr}, x the {what} {g.op[nid]} saved in {losses}'s graph: "
                          "linked by value (a guess)"))


def _fit(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``X``: ``a``, ``b`` of the least-squares ``y ≈ a·x + b``, and whether it holds."""
    xm = X.mean(dim=1, keepdim=True)
    dx = X - xm
    dy = y - y.mean()
    var = (dx * dx).sum(dim=1)
    a = (dx * dy).sum(dim=1) / var.clamp_min(1e-300)
    b = y.mean() - a * xm[:, 0]
    err = (a[:, None] * X + b[:, None] - y).abs().amax(dim=1)
    scale = float(y.abs().max()) + 1e-12
    return a, b, (var > 1e-18) & (a.abs() > 1e-12) & (err <= 1e-5 * scale)


def _first_affine(pool: Sequence[tuple[int, str, Any, torch.Tensor]],
                  y: torch.Tensor) -> tuple[tuple[int, str, Any, torch.Tensor], float, float] | None:
    """The first candidate ``x`` with ``y == a·x + b`` (float32 precision), with ``a`` and ``b``.

    16 evenly spaced elements screen every candidate at once; only those that pass are fitted
    on all their elements. O(16·C + n·S) for C candidates and S survivors of n elements.
    """
    if not pool:
        return None
    n = y.numel()
    idx = torch.linspace(0, n - 1, min(n, 16)).long()
    with torch.no_grad():
        flat = [c[3].reshape(-1) for c in pool]
        if n <= 4096 and len({f.device for f in flat}) == 1:  # small: one stack, then 16 columns
            X = torch.stack(flat)[:, idx.to(flat[0].device)].to("cpu", torch.float64)
        else:  # large: 16 elements of each, without copying whole tensors
            X = torch.stack([f[idx.to(f.device)].cpu() for f in flat]).to(torch.float64)
        return _screened(pool, flat, X, y, idx)


def _screened(pool: Sequence[tuple[int, str, Any, torch.Tensor]], flat: Sequence[torch.Tensor], X: torch.Tensor,
              y: torch.Tensor, idx: torch.Tensor) -> tuple[tuple[int, str, Any, torch.Tensor], float, float] | None:
    """The first candidate whose 16 screened elements fit, confirmed on all of them."""
    _, _, ok = _fit(X, y[idx])
    for i in torch.nonzero(ok).flatten().tolist():
        a, b, full = _fit(flat[i].to("cpu", torch.float64)[None, :], y)
        if bool(full[0]):
            return pool[i], float(a[0]), float(b[0])
    return None


def _confirm(roots: Sequence[Root], known: Known, leaf_node: dict[int, int],
             confirmed: Sequence[set[int] | None] | None, tr: Any,
             kinds: Sequence[str] = ()) -> tuple[dict[int, set[int]] | None, str]:
    """Which parameter nodes each loss really sends gradient to: loss index -> param nodes."""
    params = [(pid, info.tensor) for pid, info in known.params.items()
              if info.tensor.requires_grad and pid in leaf_node]
    truth: dict[int, set[int]] = {}
    if confirmed is not None:
        for i, got in enumerate(confirmed):
            if got is not None:
                truth[i] = {leaf_node[pid] for pid, _ in params if pid in got}
        return (truth or None), ("" if truth else "no single-loss backward to confirm with")
    if not params:
        return None, "no known parameters"
    if any(k == "checkpoint" for k in kinds):
        # torch.autograd.grad through a reentrant checkpoint accumulates into the hidden
        # parameters' .grad (its inner backward is a real one): never touch the user's grads.
        return None, "torch.autograd.grad can't see through a reentrant checkpoint without changing .grad"
    tensors = [t for _, t in params]
    pause = tr.paused() if tr is not None and hasattr(tr, "paused") else contextlib.nullcontext()
    devices = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    # A custom backward may draw random numbers: the user's RNG streams come out unchanged.
    with pause, torch.random.fork_rng(devices=devices):
        for i, root in enumerate(roots):
            try:
                grads = torch.autograd.grad(root.tensor, tensors, allow_unused=True, retain_graph=True)
            except RuntimeError as e:
                return None, f"a real backward failed ({str(e).splitlines()[0]})"
            truth[i] = {leaf_node[pid] for (pid, _), gr in zip(params, grads) if gr is not None}
    return truth, ""


def _name_hidden_params(g: ProbeGraph, res: Any, known: Known) -> None:
    """Parameters the walk met that no name reached: named through the live modules that hold them."""
    hidden = {v for v in g.nodes_of_kind("param") if g.label[v] == "Parameter"}
    if not hidden:
        return
    tensors = {nid: fn.variable for fn, nid in res.fn_node.items()
               if nid in hidden and hasattr(fn, "variable")}
    extra = name_hidden(list(tensors.values()), taken=[i.name.split(".")[0] for i in known.params.values()])
    for nid, t in tensors.items():
        info = extra.params.get(id(t))
        if info is not None:
            g.label[nid] = g.name[nid] = info.name
            g.module[nid] = info.module


def _add_unwalked_params(g: ProbeGraph, known: Known, leaf_node: dict[int, int]) -> None:
    """Known parameters the walk never met: unreached (requires grad) or frozen nodes."""
    for pid, info in known.params.items():
        if pid in leaf_node:
            continue
        t = info.tensor
        nid = g.add_node("param", info.name, "AccumulateGrad", info.module, info.name)
        g.param_order[nid] = info.order
        g.meta[nid] = TensorMeta.of(t)
        if info.optimizers:
            g.optimizers[nid] = list(info.optimizers)
        if not t.requires_grad:
            g.frozen.add(nid)
        leaf_node[pid] = nid


def _map_cuts(g: ProbeGraph, records: Sequence[Any], res: Any, known: Known) -> list[tuple[list[int], int, Any]]:
    """Turn the recorder's cut records into (from nodes, to node, record) triples."""
    out: list[tuple[list[int], int, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    first_consumer: dict[int, int] | None = None  # leaf -> the op that reads it, built once
    for rec in records:
        srcs: list[int] = []
        for fn in rec.source_fns:
            nid = res.fn_node.get(fn)
            if nid is not None:
                srcs.append(nid)
        for tid in rec.source_param_ids:
            nid = res.leaf_node.get(tid)
            if nid is not None:
                srcs.append(nid)
        dsts: list[int] = []
        for fn, ref in rec.targets:  # the first target this graph holds
            if fn is not None and fn in res.fn_node:
                dsts.append(res.fn_node[fn])
                break
            leaf = ref() if ref is not None else None
            if leaf is not None and id(leaf) in res.leaf_node:
                dsts.append(res.leaf_node[id(leaf)])
                break
        if not srcs or not dsts:
            continue  # the cut's two sides are not both in this graph
        if g.kind[dsts[0]] in ("reentry_leaf", "leaf"):
            # Draw the cut into the op that reads the re-entered leaf (net2's), not the leaf itself.
            leaf = dsts[0]
            if first_consumer is None:
                first_consumer = {}
                leaves = set(g.nodes_of_kind("reentry_leaf", "leaf"))
                for s, d in zip(g.src, g.dst):
                    if s in leaves and s not in first_consumer:
                        first_consumer[s] = d
            consumer = first_consumer.get(leaf)
            if consumer is not None:
                dsts[0] = consumer
        key = (tuple(srcs), dsts[0], rec.location)
        if key in seen:
            continue
        seen.add(key)
        out.append((list(dict.fromkeys(srcs)), dsts[0], rec))
    return out


def _cut_inputs(cut_pairs: Sequence[tuple[list[int], int, Any]], leaf_node: Mapping[int, int]) -> list[CutInput]:
    """The recorder's cuts as node ids, for the analysis: (sources, destination, record) in.

    A record holds weak references to the leaves its data came back as; the first one still
    alive and in the graph is the cut's rebuilt leaf. Complexity: O(cuts × targets).
    """
    inputs: list[CutInput] = []
    for srcs, d, rec in cut_pairs:
        leaf: int | None = None
        for _, ref in rec.targets:
            tensor = ref() if ref is not None else None
            if tensor is not None and id(tensor) in leaf_node:
                leaf = leaf_node[id(tensor)]
                break
        inputs.append(CutInput(srcs, d, rec.kind, list(rec.chain), rec.location, rec.reentry_location,
                               guess=rec.guess, ignored=rec.ignored, made_requires_grad=rec.made_requires_grad,
                               leaf=leaf))
    return inputs
