"""Provenance and cut records: where a grad-less value left autograd, and one closed cut."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_PER_SITE = 16  # cut instances kept per (exit, re-entry) site pair: bounds a long trace
_ACC_SEQ = 2 ** 63  # AccumulateGrad nodes carry UINT64_MAX as their sequence number
_KIND_RANK = {"detach": 0, "no_grad": 1, "data": 2, "tolist": 3, "item": 3, "numpy": 4}
_MAX_SEEN = 100_000  # modules / optimizers the registries hold (a model rebuilt every step is bounded)
_MAX_SOURCES = 16  # autograd nodes / exits one provenance remembers
_MAX_CHAIN = 12  # operations one chain keeps: the first 8, "…", the last 3


def _cap(chain: tuple[tuple[str, str | None], ...]) -> tuple[tuple[str, str | None], ...]:
    """A chain no longer than _MAX_CHAIN (a loop can add one op per step forever)."""
    if len(chain) <= _MAX_CHAIN:
        return chain
    return chain[:8] + (("…", None),) + chain[-3:]


@dataclass(frozen=True)
class Provenance:
    """Where a grad-less value left autograd, and the operations it has been through since."""

    kind: str
    location: str | None
    source_fns: tuple[Any, ...] = ()
    source_params: tuple[Any, ...] = ()  # weakrefs to leaf tensors (no_grad exits)
    chain: tuple[tuple[str, str | None], ...] = ()
    guess: bool = False
    #: when an op combined data from several distinct exits, each one's own provenance: a
    #: re-entry then closes one cut per exit, each at its own kind and line
    parts: tuple[Any, ...] = ()

    def then(self, op: str, location: str | None, kind: str | None = None) -> "Provenance":
        """This provenance after one more operation (the most specific exit kind wins)."""
        k = self.kind
        if kind is not None and _KIND_RANK.get(kind, -1) > _KIND_RANK.get(k, -1):
            k = kind
        return Provenance(k, self.location, self.source_fns, self.source_params,
                          _cap(self.chain + ((op, location),)), self.guess,
                          tuple(p.then(op, location, kind) for p in self.parts))

    @staticmethod
    def merge(provs: list["Provenance"], op: str, location: str | None,
              extra_fns: tuple[Any, ...] = (), extra_params: tuple[Any, ...] = (),
              kind: str | None = None) -> "Provenance":
        """One provenance for an op that combined several tagged inputs."""
        first = provs[0] if provs else Provenance(kind or "no_grad", location)
        # Bounded: `acc = acc + x.detach().numpy()` in a loop merges one more exit each step.
        fns = tuple(dict.fromkeys(fn for p in provs for fn in p.source_fns))[-_MAX_SOURCES:] + extra_fns
        params = (tuple(p for pr in provs for p in pr.source_params) + extra_params)[-_MAX_SOURCES:]
        k = max((p.kind for p in provs), key=lambda x: _KIND_RANK.get(x, -1)) if provs else (kind or "no_grad")
        if kind is not None and _KIND_RANK.get(kind, -1) > _KIND_RANK.get(k, -1):
            k = kind
        # One part per exit site (the latest one), at most _MAX_SOURCES of them.
        by_exit: dict[Any, Provenance] = {}
        for q in (q for p in provs for q in (p.parts or (p,))):
            by_exit.pop(q.location, None)
            by_exit[q.location] = q
        flat = list(by_exit.values())[-_MAX_SOURCES:]
        parts = tuple(q.then(op, location, kind) for q in flat) if len(flat) > 1 else ()
        return Provenance(k, first.location, fns, params, _cap(first.chain + ((op, location),)),
                          any(p.guess for p in provs), parts)


def _light(p: Provenance) -> Provenance:
    """``p`` without its autograd nodes and leaves: the kind, line and chain stay."""
    return Provenance(p.kind, p.location, (), (), p.chain, p.guess, tuple(_light(q) for q in p.parts))


@dataclass
class CutRecord:
    """One cut: the exit, the chain, and the re-entry, with the autograd nodes on either side."""

    kind: str
    chain: list[tuple[str, str | None]]
    location: str | None
    reentry_location: str | None
    source_fns: list[Any] = field(default_factory=list)
    source_params: list[Any] = field(default_factory=list)  # weakrefs
    #: where the data came back: (first autograd node after it, weakref to a re-entered leaf);
    #: one exit can re-enter at several places (a residual connection), the first one first
    targets: list[tuple[Any, Any]] = field(default_factory=list)
    made_requires_grad: bool = False
    guess: bool = False
    ignored: bool = False
    _prov: Any = field(default=None, repr=False, compare=False)

    @property
    def target_fn(self) -> Any:
        return self.targets[0][0] if self.targets else None

    @property
    def target_leaf(self) -> Any:
        return self.targets[0][1] if self.targets else None

    @property
    def source_param_ids(self) -> list[int]:
        out = []
        for r in self.source_params:
            t = r()
            if t is not None:
                out.append(id(t))
        return out
