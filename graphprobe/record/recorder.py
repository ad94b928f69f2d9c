"""The recorder: ``trace()`` notes every exit from autograd and every re-entry, as the script runs.

A walk of ``grad_fn`` can't tell a constant from a numpy-born tensor: both are ``None`` in
``next_functions``. So while a trace is active, a ``TorchFunctionMode`` watches tensor calls:

* an **exit** (``.detach()``, ``.data``, ``.numpy()``, ``.item()``, ``.tolist()``, an op under
  ``no_grad`` on tensors that require grad) tags what it returns with a :class:`Provenance`: the
  autograd node before the exit, the kind of exit and its ``file:line``;
* the tag **follows the data**: through grad-less torch ops, through numpy (the array handed back
  is a :class:`TrackedArray`, an ``ndarray`` subclass that carries the tag through ufuncs,
  ``concatenate``/``stack``/``clip``, slicing and reshape) and through Python scalars
  (:class:`TrackedFloat`, :class:`TrackedInt`, which carry it through arithmetic);
* a **re-entry** (``torch.from_numpy``, ``torch.tensor``, ``torch.as_tensor``, ``requires_grad_``,
  or a tagged grad-less tensor meeting tensors that require grad in an op) closes a
  :class:`CutRecord` from the node before the exit to the first node after the re-entry.

Module forward hooks tag each op's ``grad_fn.metadata`` with the module running it, so the graph
can be clustered by module. Everything is removed on every exit path of the ``with`` block.

The tag also follows data into what it is *written* into: a tensor written by ``buf[idx] = x``,
``copy_``, ``index_put_``, ``scatter_``/``scatter_add_``, ``index_add_``, ``masked_scatter_``, an
``out=`` argument or an in-place op under ``no_grad``; a numpy buffer that user code allocated
(handed back *watched*, see :class:`TrackedArray`) and filled by index, ``np.copyto``, ``np.put``
or a ufunc's ``out=``. A tag lives as long as a value holding it (memory is bounded per exit
site by letting old keys drop their autograd nodes, never their tag).

Known limits (documented, see the README): arrays that leave as ``TrackedArray`` fail a strict
``type(a) is np.ndarray`` check, and ``.item()`` values are float/int subclasses; data that goes
through numpy scalars, ``float()``, ``math`` functions or string formatting loses its tag (an
unchanged computed value is then linked by value, as a guess).
"""
from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import weakref
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from ..errors import GraphprobeError
from . import state as _state
from .frames import _ignored, user_frame, user_location
from ..locations import is_user_file as _is_user_file
from ..walk.stack import ensure_stack_for_free
from .mode import _COMPILER, _MAX_STEPS, _Mode, _first_grad_fn, _gfn, _no_grad_prov, _sources, _tensors_deep, _tensors_in
from .modestack import _DEFERRED, _exit_by_identity, _leave_mode, _sweep_modes
from .patches import _NP_ALLOCATORS, _grad_off_enter, _grad_off_exit, _np_keep_tag, _np_watch
from .provenance import _ACC_SEQ, _MAX_SEEN, _PER_SITE, CutRecord, Provenance, _cap, _light
from .tagged import _KEYS, _SEEN_SCALARS, TrackedArray, _collect, _computed_float, _get_prov

#: Set once the recorder has tagged a node with its module: a plain probe() (no trace ever ran)
#: can then skip reading every node's metadata. The pipeline reads it (:func:`modules_tagged`)
#: and tells the walk; the walk never imports the recorder.
_TAGGED = [False]


def modules_tagged() -> bool:
    """Whether any trace in this process has tagged an autograd node with its module."""
    return _TAGGED[0]


class TraceSnapshot:
    """The records of a trace at given moments, merged (what the runner keeps per step)."""

    def __init__(self) -> None:
        self.records: dict[int, CutRecord] = {}
        self.reentry: dict[int, Any] = {}
        self.plain: dict[int, Any] = {}
        self.consumed: dict[int, Any] = {}
        self.steps: list[tuple[int, Any]] = []

    def add(self, tr: "Trace") -> None:
        """Merge what ``tr`` holds now; an earlier record of the same site pair is kept."""
        for recs in tr._records.values():
            for r in recs:
                self.records.setdefault(id(r), r)
        self.reentry.update(tr._reentry_leaves)
        self.plain.update(tr._plain_leaves)
        # The live containers, not copies: a gradient is read and an optimizer steps after the
        # step's last backward, and the report is built only when the next step begins.
        self.consumed = tr._consumed
        self.steps = tr._steps

    def cut_records(self) -> list[CutRecord]:
        return list(self.records.values())

    def consumed_leaf_ids(self) -> set[int]:
        return {i for i, r in self.consumed.items() if r() is not None}

    def optimizer_steps(self) -> list[tuple[int, Any]]:
        return [(s, r()) for s, r in self.steps if r() is not None]

    def reentry_leaf_ids(self) -> set[int]:
        return {i for i, r in self.reentry.items() if r() is not None}

    def plain_leaf_ids(self) -> set[int]:
        return {i for i, r in self.plain.items() if r() is not None}


class Trace(contextlib.ContextDecorator):
    """Records exits from autograd and re-entries while active; see :func:`trace`."""

    def __init__(self) -> None:
        # Per (exit, re-entry, kind) site: the latest few instances. Bounded, so a trace around a
        # long loop does not grow, yet several cuts at one site in one step (a loop over heads)
        # are all kept.
        self._records: dict[tuple[Any, ...], list[CutRecord]] = {}
        self._closed: dict[int, CutRecord] = {}  # id(provenance) -> its cut (the record pins it)
        # Exit values remembered by value (per exit site, the latest few): float(v), a round
        # trip through a string or an untracked library lose the tag, and a re-entry of the very
        # same computed value is then linked, marked as a guess.
        self._recent_items: dict[float, Provenance] = {}
        self._recent_by_site: dict[Any, list[float]] = {}
        # key -> [provenance, live holders] of tagged arrays and scalars; a key goes when its
        # last holder does (see _assign), never while one lives.
        self._tagged: dict[int, list[Any]] = {}
        self._heavy: dict[Any, list[int]] = {}  # exit site -> its newest keys that hold nodes
        # plain ndarrays written from tagged data (they can't hold an attribute): id -> (ref, prov)
        self._np_plain: dict[int, tuple[Any, Provenance]] = {}
        self._prov: dict[int, tuple[Any, Provenance]] = {}
        self._plain_leaves: dict[int, Any] = {}
        self._reentry_leaves: dict[int, Any] = {}
        #: leaves whose gradient the script uses (an inputs= of autograd.grad, a .grad read)
        self._consumed: dict[int, Any] = {}
        #: optimizer steps, oldest first: (highest autograd sequence nr seen before it, weakref)
        self._steps: list[tuple[int, Any]] = []
        # running modules, with the sequence nr at entry and the (file, line) that called them
        self._modules: list[tuple[Any, int, Any]] = []
        # Every module that ran and every optimizer built or stepped while recording, by weak
        # reference: names.py names what no variable reaches (a model held by a registry).
        self._seen_modules: dict[int, tuple[Any, Any]] = {}  # id -> (ref, ref of the caller or None)
        self._seen_optimizers: dict[int, Any] = {}  # id -> ref
        self.from_start = False  # set by the runner: recording began before the script's first line
        self._seq_hi = -1  # highest autograd sequence nr seen so far on the recording thread
        self._seen = 0  # ops whose output node Python has touched (see walk.ensure_stack_for_free)
        self._stack_checked = 5_000
        self._mode: _Mode | None = None
        self._handles: list[Any] = []
        self._patches: list[tuple[Any, str, Any, Any, bool]] = []  # owner, name, old, new, own
        self._thread = 0
        self._paused = 0
        self._new_done = False
        # `with torch.no_grad():` blocks entered while recording: (the user frame that entered
        # it, or None when torch's own code did (a decorator), its file:line)
        self._grad_off: list[tuple[Any, str | None]] = []
        self.active = False

    # -- public ---------------------------------------------------------------------------
    def cut_records(self) -> list[CutRecord]:
        """The cuts recorded so far (per exit/re-entry site pair, the latest instances)."""
        return [r for recs in self._records.values() for r in recs]

    def reentry_leaf_ids(self) -> set[int]:
        """``id()`` of live leaf tensors that were re-entered and made to require grad."""
        return {i for i, r in self._reentry_leaves.items() if r() is not None}

    def plain_leaf_ids(self) -> set[int]:
        """``id()`` of live leaf tensors made to require grad from fresh data (inputs, not cuts)."""
        return {i for i, r in self._plain_leaves.items() if r() is not None}

    def modules_seen(self) -> list[tuple[Any, Any]]:
        """``(module, the module running when it was called, or None)`` for every live module that ran."""
        out = []
        for ref, parent_ref in list(self._seen_modules.values()):
            m = ref()
            if m is not None:
                out.append((m, parent_ref() if parent_ref is not None else None))
        return out

    def optimizers_seen(self) -> list[Any]:
        """Every live optimizer built or stepped while recording, in the order first seen."""
        return [o for o in (r() for r in list(self._seen_optimizers.values())) if o is not None]

    def consumed_leaf_ids(self) -> set[int]:
        """``id()`` of live leaves whose gradient the script used (``inputs=``, a ``.grad`` read)."""
        return {i for i, r in self._consumed.items() if r() is not None}

    def optimizer_steps(self) -> list[tuple[int, Any]]:
        """``(autograd sequence nr before the step, optimizer)`` of the recorded steps, oldest first."""
        return [(s, r()) for s, r in self._steps if r() is not None]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Record nothing inside this block (graphprobe's own confirmation backward)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def clear(self) -> None:
        """Forget every record (and the autograd nodes they hold)."""
        self._records.clear()
        self._closed.clear()
        self._reentry_leaves.clear()
        self._plain_leaves.clear()
        self._consumed.clear()
        self._steps.clear()

    # -- state kept while recording --------------------------------------------------------
    def _tensor_prov(self, t: torch.Tensor) -> Provenance | None:
        e = self._prov.get(id(t))
        if e is None or e[0]() is not t:
            return None
        if t.requires_grad:
            # It is back in autograd through a legitimate door (a custom Function's or a
            # checkpoint's output, whose forward ran under no_grad): not a cut.
            return None
        return e[1]

    def _set_prov(self, t: torch.Tensor, prov: Provenance) -> None:
        key = id(t)
        d = self._prov

        def gone(_: Any, key: int = key, d: dict = d) -> None:
            d.pop(key, None)

        d[key] = (weakref.ref(t, gone), prov)

    def _note_consumed(self, tensors: list[Any]) -> None:
        for t in tensors[:64]:
            if isinstance(t, torch.Tensor) and t.grad_fn is None and len(self._consumed) < 4096:
                self._consumed[id(t)] = weakref.ref(t)

    def _drop_prov(self, t: torch.Tensor) -> None:
        self._prov.pop(id(t), None)

    def _register(self, prov: Provenance) -> int:
        """A new key for ``prov`` (no holder yet). Complexity: O(1) amortised.

        Memory stays bounded without dropping a live tag: of one exit site's keys, the newest
        ``_PER_SITE`` keep their autograd nodes; an older one keeps its kind, line and chain (a
        re-entry still finds it) and lets the nodes go. Nodes of a step long gone are not in
        the graph being probed anyway, and the newer values of the same site carry the current
        ones.
        """
        key = next(_KEYS)
        self._tagged[key] = [prov, 0]
        if prov.source_fns or prov.source_params or prov.parts:
            site = (prov.location, prov.kind)
            keys = self._heavy.get(site)
            if keys is None:
                keys = self._heavy[site] = []
            keys.append(key)
            if len(keys) > 2 * _PER_SITE:
                tagged = self._tagged
                for old in keys[:-_PER_SITE]:
                    e = tagged.get(old)
                    if e is not None:
                        e[0] = _light(e[0])
                del keys[:-_PER_SITE]
        return key

    def _release(self, key: int) -> None:
        e = self._tagged.get(key)
        if e is not None:
            e[1] -= 1
            if e[1] <= 0:
                del self._tagged[key]

    def _note_plain_write(self, a: np.ndarray, provs: list[Provenance], op: str, loc: str | None) -> None:
        """Remember that tagged data was written into the plain ndarray ``a``."""
        key = id(a)
        d = self._np_plain
        e = d.get(key)
        mine = [e[1]] if e is not None and e[0]() is a else []
        prov = Provenance.merge(mine + provs, op, loc)
        def gone(_: Any, key: int = key, d: dict = d) -> None:
            d.pop(key, None)

        try:
            ref = weakref.ref(a, gone)
        except TypeError:
            return
        d[key] = (ref, prov)

    def _array_prov(self, a: Any) -> Provenance | None:
        """The tag of an array about to re-enter torch: its own, or a write into a plain one."""
        p = _get_prov(a)
        if p is None and self._np_plain and isinstance(a, np.ndarray):
            e = self._np_plain.get(id(a))
            if e is not None and e[0]() is a:
                p = e[1]
        return p

    def _remember_value(self, v: float, prov: Provenance) -> None:
        """Remember an exit's float value for a later value match (per site, the latest few)."""
        site = (prov.location, prov.kind)
        vals = self._recent_by_site.get(site)
        if vals is None:
            vals = self._recent_by_site[site] = []
        vals.append(v)
        self._recent_items[v] = prov
        if len(vals) > _PER_SITE:
            old = vals.pop(0)
            if old not in vals and self._recent_items.get(old) is not None \
                    and self._recent_items[old].location == prov.location:
                del self._recent_items[old]
        if len(self._recent_by_site) > 256:  # sites are code lines: bounded, but be safe
            self._recent_by_site.clear()
            self._recent_items.clear()

    def _value_match(self, data: Any) -> Provenance | None:
        """An exit's value found in ``data`` (a float, or a list of them): the link is a guess."""
        recent = self._recent_items
        if not recent:
            return None
        stack, budget = [data], 64
        while stack and budget > 0:
            v = stack.pop()
            budget -= 1
            if type(v) is float:
                p = recent.get(v)
                if p is not None and _computed_float(v):
                    return p
            elif isinstance(v, (list, tuple)):
                stack.extend(v)
        return None

    def _close(self, prov: Provenance, op: str, loc: str | None, *, target_fn: Any = None,
               target_leaf: Any = None, made_requires_grad: bool = False) -> None:
        if prov.parts:  # data from several exits came back together: one cut for each exit
            for p in prov.parts:
                self._close(p, op, loc, target_fn=target_fn, target_leaf=target_leaf,
                            made_requires_grad=made_requires_grad)
            return
        leaf_ref = weakref.ref(target_leaf) if target_leaf is not None else None
        if target_leaf is not None:
            self._reentry_leaves[id(target_leaf)] = leaf_ref
        rec = self._closed.get(id(prov))
        if rec is not None and rec._prov is prov:
            # The same exit coming back again (tmp used twice): one cut, one more target.
            if len(rec.targets) < _PER_SITE:
                rec.targets.append((target_fn, leaf_ref))
            rec.made_requires_grad |= made_requires_grad
            return
        chain = list(prov.chain)
        if not op.startswith("op:") and op != "requires_grad_" and (not chain or chain[-1][0] != op):
            chain.append((op, loc))
        rec = CutRecord(
            kind=prov.kind, chain=chain, location=prov.location, reentry_location=loc,
            source_fns=list(prov.source_fns), source_params=list(prov.source_params),
            targets=[(target_fn, leaf_ref)], made_requires_grad=made_requires_grad, guess=prov.guess,
            ignored=_ignored(prov.location) or _ignored(loc),
        )
        rec._prov = prov
        self._closed[id(prov)] = rec
        recs = self._records.setdefault((prov.location, loc, prov.kind), [])
        recs.append(rec)
        if len(recs) > _PER_SITE:
            old = recs.pop(0)
            self._closed.pop(id(old._prov), None)

    def _after_op(self, func: Any, args: Any, kwargs: Any, out: Any) -> None:
        """Tag module ownership; follow tagged data; note no_grad exits and re-entries.

        Complexity: O(arguments) per op; an op with no tagged input and grad mode on returns
        after the module bookkeeping (the fast path every op of a plain step takes).
        """
        if isinstance(out, torch.Tensor) and out.requires_grad and _gfn(out) is None \
                and not isinstance(out, torch.nn.Parameter) and not any(out is a for a in args) \
                and not out._is_view():
            # torch.randn(..., requires_grad=True): an input leaf made on purpose, not a cut.
            self._plain_leaves[id(out)] = weakref.ref(out)
            return
        try:
            fns = [o.grad_fn for o in ((out,) if isinstance(out, torch.Tensor) else out)
                   if isinstance(o, torch.Tensor) and o.grad_fn is not None]
        except RuntimeError:  # a no_grad view of a parameter written in place: not in any graph
            fns = [f for f in (_gfn(o) for o in ((out,) if isinstance(out, torch.Tensor) else out)
                               if isinstance(o, torch.Tensor)) if f is not None]
        if fns:
            # Python now holds these nodes' wrappers: make sure torch can free long chains of them.
            self._seen += 1
            if self._seen >= self._stack_checked * 2:
                self._stack_checked = self._seen
                ensure_stack_for_free(self._seen * 4)
            hi = max(fn._sequence_nr() for fn in fns)
            if self._seq_hi < hi < _ACC_SEQ:
                self._seq_hi = hi
            if self._modules:
                self._tag_new_nodes(fns)
        provs: list[Provenance] = []
        if self._prov or _SEEN_SCALARS:
            _collect(list(args) + list(kwargs.values()), provs, budget=64)
        grad_on = torch.is_grad_enabled()
        if not provs and grad_on:
            return
        outs = [o for o in ([out] if isinstance(out, torch.Tensor) else out) if isinstance(o, torch.Tensor)]
        ins = list(_tensors_in(list(args) + list(kwargs.values())))
        name = getattr(func, "__name__", "op")
        if not grad_on:
            req = [t for t in ins if t.requires_grad]
            if not req and not provs:
                return
            # New tensors, and tensors written in place (copy_, scatter_add_, index_add_, out=):
            # a write carries what was in the target and what came in (a no_grad voxelizer).
            new_outs = [o for o in outs if not o.requires_grad]
            if not new_outs:
                return
            loc = self._no_grad_site() if req else user_location()
            for o in new_outs:
                src = [t for t in req if t is not o]
                written = any(o is i for i in ins)
                if written and not src and not provs:
                    continue
                prov = _no_grad_prov(provs, src, name if written else "no_grad: " + name, name, loc)
                self._set_prov(o, prov)
                if written and o._is_view():
                    self._tag_base(o, prov)
            return
        fn = _first_grad_fn(out)
        loc = user_location()
        if fn is not None:
            prov = Provenance.merge(provs, name, loc) if len(provs) > 1 else provs[0]
            self._close(prov, "op:" + name, loc, target_fn=fn)
            return
        prov = Provenance.merge(provs, name, loc)
        for o in outs:
            self._set_prov(o, prov)
            if o._is_view() and any(o is i for i in ins):  # written in place through a view
                self._tag_base(o, prov)

    def _no_grad_site(self) -> str | None:
        """Where a no_grad exit happened, as a user would point at it.

        The op's own line, when the ``with torch.no_grad():`` that turned gradients off is in
        the same function (or unknown: a decorated function, a bare ``set_grad_enabled``);
        the ``with`` line itself when the op runs deeper, in code the block called (a
        voxelizer's comparisons and scatters are not where the user cut the graph).
        """
        g = self._grad_off
        if g and g[-1][0] is not None:
            f = user_frame(2)
            if f is not g[-1][0]:
                return g[-1][1]
        return user_location(2)

    def _tag_base(self, view: torch.Tensor, prov: Provenance) -> None:
        """A write into ``view`` lands in its base too: the base carries the tag as well."""
        base = view._base
        if base is None or base.requires_grad:
            return
        mine = self._tensor_prov(base)
        self._set_prov(base, Provenance.merge([mine, prov], prov.chain[-1][0] if prov.chain else "write",
                                              prov.chain[-1][1] if prov.chain else None)
                       if mine is not None and mine is not prov else prov)

    def _after_write(self, target: torch.Tensor, value: Any, op: str) -> None:
        """``target[idx] = value`` ran: the target carries what came in. Complexity: O(value)."""
        provs: list[Provenance] = []
        if self._prov or _SEEN_SCALARS:
            _collect(value, provs, budget=64)
        grad_on = torch.is_grad_enabled()
        req = [] if grad_on else [t for t in _tensors_in([value]) if t.requires_grad]
        if not provs and not req:
            return
        loc = self._no_grad_site() if req else user_location()
        if target.requires_grad:
            fn = _gfn(target)
            if grad_on and fn is not None and provs:
                # Tagged data met grad in the write (h[:, 0] = d.detach() with h from a net).
                prov = Provenance.merge(provs, op, loc) if len(provs) > 1 else provs[0]
                self._close(prov, "op:__setitem__", loc, target_fn=fn)
            return
        mine = self._tensor_prov(target)
        prov = _no_grad_prov(([mine] if mine is not None else []) + provs, req, op, op, loc)
        self._set_prov(target, prov)
        if target._is_view():
            self._tag_base(target, prov)

    def _from_data(self, out: torch.Tensor, data: Any, name: str) -> None:
        """A tensor made from ``data`` (torch.tensor, as_tensor, new_tensor, torch.Tensor(arr)).

        Its tag: the tags in ``data`` (arrays, tracked scalars, tagged tensors, lists of them, a
        plain ndarray that tagged data was written into); else tensors in ``data`` that require
        grad, copied out of autograd here (``torch.tensor([a[0], a[1]])``); else, marked as a
        guess, a value an exit produced. Complexity: O(size of data) up to a budget.
        """
        provs: list[Provenance] = []
        _collect(data, provs)
        if not provs and isinstance(data, np.ndarray):
            p = self._array_prov(data)
            if p is not None:
                provs.append(p)
        loc = user_location()
        prov: Provenance | None = None
        if provs:
            prov = Provenance.merge(provs, name, loc)
        elif _gfn(out) is None and out is not data:
            req = [t for t in itertools.islice(_tensors_deep(data), 64) if t.requires_grad and t is not out]
            if req:
                fns, params = _sources(req)
                prov = Provenance("detach", loc, fns, params, ((name, loc),))
            else:
                p = self._value_match(data)
                if p is not None:
                    # No tag, but the exact value an exit produced: link it, marked as a guess.
                    prov = Provenance(p.kind, p.location, p.source_fns, p.source_params,
                                      _cap(p.chain + (("value match", None), (name, loc))), guess=True)
        if prov is not None:
            if out.requires_grad and _gfn(out) is None:
                self._close(prov, name, loc, target_leaf=out, made_requires_grad=True)
            elif not out.requires_grad:
                self._set_prov(out, prov)
        elif out.requires_grad and _gfn(out) is None and out is not data:
            self._plain_leaves[id(out)] = weakref.ref(out)

    def _tag_new_nodes(self, fns: list[Any]) -> None:
        """Tag the nodes this call made with the innermost running module.

        A composite call (``F.multi_head_attention_forward``) shows us only its output, so walk
        back from it over the nodes created since the module was entered: autograd numbers nodes
        in creation order (``_sequence_nr``, per thread), and nodes already tagged by an inner
        module stop the walk. Cost: O(nodes the call made).
        """
        module, entry, line = self._modules[-1]
        _TAGGED[0] = True
        # The forward line that made these nodes, for the page's node details: the op's own line
        # when the script called it (a relu in the user's forward), else the line that called the
        # module (found once per module call, in _pre_hook). A few frames at most, no string.
        f: Any = sys._getframe(3)  # _after_op, __torch_function__, then the op's caller
        for _ in range(4):
            if f is None or _is_user_file(f.f_code.co_filename):
                break
            f = f.f_back
        if f is not None and _is_user_file(f.f_code.co_filename):
            line = (f.f_code.co_filename, f.f_lineno)
        stack = list(fns)
        while stack:
            fn = stack.pop()
            md = fn.metadata
            if "graphprobe_module" in md:
                continue
            md["graphprobe_module"] = module
            md["graphprobe_line"] = line
            for nxt, _ in fn.next_functions:
                if nxt is not None:
                    seq = nxt._sequence_nr()
                    if entry < seq < _ACC_SEQ:
                        stack.append(nxt)

    # -- install / uninstall ---------------------------------------------------------------
    def __enter__(self) -> "Trace":
        if _state.active is not None:
            if _state.active._thread != threading.get_ident():
                raise GraphprobeError(
                    "graphprobe.trace() is already recording in another thread: graphprobe records "
                    "one thread at a time. Trace the thread that runs the training step."
                )
            raise GraphprobeError(
                "graphprobe.trace() is already active: nested traces are not supported. "
                "Use the outer trace; probe() picks it up."
            )
        self._thread = threading.get_ident()
        self._install()
        _state.active = self
        self.active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.active:
            _sweep_modes()
            return
        try:
            if _COMPILER._is_compiling_flag and self._mode is not None:
                # Left while torch.compile compiles (a backward aot_autograd traces): its guards
                # refer to the global hooks and the mode stack as they are now, so taking them
                # off here would break the compile. Record nothing from now on; the hooks and
                # patches come off at the next module call or optimizer step outside the
                # compile, or when the run ends (release_modes).
                self._mode.off = True
                _DEFERRED.append(self)
            else:
                self._uninstall()
        finally:
            _state.active = None
            self.active = False
            self._prov.clear()
            self._recent_items.clear()
            self._recent_by_site.clear()
            self._tagged.clear()
            self._heavy.clear()
            self._np_plain.clear()
            self._grad_off.clear()  # frames of blocks still open: hold none past the trace
            _SEEN_SCALARS.clear()

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        # Whether the attribute was the owner's own (a class may only inherit it: then the
        # patch is deleted again rather than set to what the base class has).
        d = getattr(owner, "__dict__", {})
        own = name in d if isinstance(owner, type) else True
        self._patches.append((owner, name, d.get(name) if isinstance(owner, type) else getattr(owner, name),
                              new, own))
        setattr(owner, name, new)

    def _install(self) -> None:
        try:
            _sweep_modes()
            from_numpy = torch.from_numpy
            tr = self

            def from_numpy_recorded(a: Any) -> torch.Tensor:
                out = from_numpy(a.view(np.ndarray) if isinstance(a, TrackedArray) else a)
                if _state.active is tr and threading.get_ident() == tr._thread:
                    prov = tr._array_prov(a)
                    if prov is not None:
                        tr._set_prov(out, prov.then("from_numpy", user_location()))
                return out

            self._patch(torch, "from_numpy", from_numpy_recorded)
            for name in ("asarray", "array", "ascontiguousarray"):
                self._patch(np, name, _np_keep_tag(getattr(np, name), name))
            for name in _NP_ALLOCATORS:
                self._patch(np, name, _np_watch(getattr(np, name), name))
            self._new_done = False
            self._maybe_patch_new()
            # A user's TorchFunctionMode entered before the trace and left inside it must take
            # itself off the stack, not graphprobe's mode on top of it.
            self._patch(TorchFunctionMode, "__exit__", _exit_by_identity)
            from torch.autograd import grad_mode

            for cls in (grad_mode.no_grad, grad_mode.inference_mode, grad_mode.set_grad_enabled):
                self._patch(cls, "__enter__", _grad_off_enter(cls.__enter__, self))
                self._patch(cls, "__exit__", _grad_off_exit(cls.__exit__, self))
            mm = torch.nn.modules.module
            self._handles.append(mm.register_module_forward_pre_hook(self._pre_hook))
            self._handles.append(mm.register_module_forward_hook(self._post_hook, always_call=True))
            from torch.optim import optimizer as optim_mod

            opt_init = torch.optim.Optimizer.__init__

            def optimizer_init_recorded(opt: Any, *args: Any, **kwargs: Any) -> None:
                opt_init(opt, *args, **kwargs)
                tr._note_optimizer(opt)

            self._patch(torch.optim.Optimizer, "__init__", optimizer_init_recorded)
            self._handles.append(optim_mod.register_optimizer_step_pre_hook(self._opt_pre))
            self._handles.append(optim_mod.register_optimizer_step_post_hook(self._opt_post))
            self._mode = _Mode(self)
            torch._C._push_on_torch_function_stack(self._mode)
        except BaseException:
            self._uninstall()
            raise

    def _uninstall(self) -> None:
        mode, self._mode = self._mode, None
        if mode is not None:
            _leave_mode(mode)
        while self._handles:
            self._handles.pop().remove()
        while self._patches:
            owner, name, orig, new, own = self._patches.pop()
            if getattr(owner, name, None) is not new:
                continue  # someone patched over ours since: theirs stays (ours only forwards)
            if own:
                setattr(owner, name, orig)
            else:
                delattr(owner, name)
        self._modules.clear()
        self._paused = 0

    def _maybe_patch_new(self) -> None:
        """Watch ``torch.Tensor(arr)``, a door back into torch that no ``__torch_function__`` sees.

        It means patching ``torch.Tensor.__new__``, which torch.compile reads once, when it
        is first imported (``torch._dynamo.polyfills.tensor``, imported by the first optimizer
        a script builds): patched before that, dynamo would keep graphprobe's function for
        good. So the patch goes in only once that import is done (checked at install and at
        each module call, where a script's data first flows).
        """
        if self._new_done or "torch._dynamo.polyfills.tensor" not in sys.modules:
            return
        self._new_done = True
        tensor_new = torch.Tensor.__new__
        tr = self

        def tensor_new_recorded(cls: Any, *args: Any, **kwargs: Any) -> Any:
            out = tensor_new(cls, *args, **kwargs)
            if args and type(args[0]) is not int and _state.active is tr and not tr._paused \
                    and threading.get_ident() == tr._thread and isinstance(out, torch.Tensor):
                tr._from_data(out, args[0], "torch.Tensor")
            return out

        self._patch(torch.Tensor, "__new__", tensor_new_recorded)

    def _pre_hook(self, module: Any, args: Any) -> None:
        if _COMPILER._is_compiling_flag:  # dynamo inlines global hooks: nothing to note there
            return
        if not self.active:  # left during a compile (see __exit__): come off now
            _sweep_modes()
            return
        if not self._new_done:
            self._maybe_patch_new()
        seen = self._seen_modules.get(id(module))
        if (seen is None or seen[0]() is not module) and len(self._seen_modules) < _MAX_SEEN:
            self._note_module(module)
        if threading.get_ident() == self._thread:
            f: Any = sys._getframe(1)  # the line that called the module, for its ops' details
            while f is not None and not _is_user_file(f.f_code.co_filename):
                f = f.f_back
            self._modules.append((module, self._seq_hi, (f.f_code.co_filename, f.f_lineno) if f else None))

    def _note_module(self, module: Any) -> None:
        # The caller is the module running on this thread now: it names a module built inside
        # its forward. Modules that can't be weakly referenced are left out.
        parent = self._modules[-1][0] if self._modules and threading.get_ident() == self._thread else None
        try:
            self._seen_modules[id(module)] = (weakref.ref(module),
                                              weakref.ref(parent) if parent is not None else None)
        except TypeError:
            pass

    def _note_optimizer(self, opt: Any) -> None:
        seen = self._seen_optimizers.get(id(opt))
        if (seen is None or seen() is not opt) and len(self._seen_optimizers) < _MAX_SEEN:
            try:
                self._seen_optimizers[id(opt)] = weakref.ref(opt)
            except TypeError:
                pass

    def _post_hook(self, module: Any, args: Any, output: Any) -> None:
        if _COMPILER._is_compiling_flag or not self.active or threading.get_ident() != self._thread:
            return
        mods = self._modules
        while mods:
            if mods.pop()[0] is module:
                break

    def _opt_pre(self, opt: Any, args: Any, kwargs: Any) -> tuple[Any, Any] | None:
        if _DEFERRED and not self.active:
            _sweep_modes()
            return None
        self._note_optimizer(opt)
        if threading.get_ident() != self._thread:
            return None
        if not self._paused:
            # Which losses an optimizer's step follows tells what the user meant them to train.
            self._steps.append((self._seq_hi, weakref.ref(opt)))
            del self._steps[:-_MAX_STEPS]
        self._paused += 1
        # A closure (LBFGS, or any step(closure)) runs the user's forward and backward inside
        # step(): record it like any forward, not as the optimizer's own update. The hook hands
        # step() the closure wrapped; the user's closure object itself is untouched.
        if "closure" in kwargs:
            closure = kwargs["closure"]
            if callable(closure):
                return args, {**kwargs, "closure": self._recorded_closure(closure)}
        elif len(args) > 1 and callable(args[1]):
            return (args[0], self._recorded_closure(args[1]), *args[2:]), kwargs
        return None

    def _recorded_closure(self, closure: Callable[..., Any]) -> Callable[..., Any]:
        tr = self

        def closure_recorded(*a: Any, **k: Any) -> Any:
            saved, tr._paused = tr._paused, 0
            try:
                return closure(*a, **k)
            finally:
                if tr.active:
                    tr._paused = saved

        return closure_recorded

    def _opt_post(self, opt: Any, args: Any, kwargs: Any) -> None:
        if threading.get_ident() == self._thread and self._paused:
            self._paused -= 1


# -- torch's function-mode stack: graphprobe's mode is left by identity --------------------------


def trace() -> Trace:
    """Record exits from autograd and re-entries while active. A context manager and a decorator.

    Examples
    --------
    >>> import graphprobe, torch
    >>> with graphprobe.trace() as t:
    ...     a = torch.ones(2, requires_grad=True)
    ...     b = torch.from_numpy((a * 2).detach().numpy() * 0.5)
    ...     loss = (b * a).sum()
    >>> [r.kind for r in t.cut_records()]
    ['numpy']
    """
    return Trace()


def active_trace() -> Trace | None:
    """The trace now recording in this thread, if any."""
    tr = _state.active
    return tr if tr is not None and tr._thread == threading.get_ident() else None
