"""The typed findings of a report: what is wrong (or notable), how bad it is, why, and the fix.

Each finding is a dataclass with its severity, reason and fix. They read like the JSON dicts of
schema 1 (``cut["kind"]``, ``d.get("node")``, ``{**cut}``): a finding is a read-only
``Mapping`` over exactly the keys its :meth:`Finding.to_dict` writes, so renderers can take a
finding or a dict loaded from JSON alike. Nothing above :mod:`graphprobe.model` is imported here.

A :class:`Cause` is one root cause: a cut (or an error) with the parameters it starves grouped by
module, the repeats of its site counted, and the findings it explains (``caused_by`` on those
findings is the cause's index in ``Report.causes``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Iterator

__all__ = ["SEVERITIES", "Finding", "Cut", "Unreached", "RebuiltLeaf", "Freed", "ScriptError",
           "Opaque", "Starved", "Cause", "severity_rank", "worst"]

SEVERITIES = ("error", "warning", "info")


def severity_rank(sev: str) -> int:
    """0 for error, 1 for warning, 2 for info (sorting key: most severe first)."""
    return SEVERITIES.index(sev) if sev in SEVERITIES else len(SEVERITIES)


def worst(sevs: Any) -> str:
    """The most severe of ``sevs`` (``info`` for none)."""
    return min(sevs, key=severity_rank, default="info")


@dataclass(eq=False)
class Finding(Mapping[str, Any]):
    """Base of every finding: a severity, a reason (why it matters) and a fix (what to write)."""

    severity: str = "info"
    reason: str = ""
    fix: str = ""
    #: index into ``Report.causes`` of the root cause that explains this finding, if another one
    caused_by: int | None = None

    #: attribute name -> JSON key, where they differ (``from`` is a Python keyword)
    _RENAME: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: attributes left out of the JSON when they hold their default (keeps schema-1 dicts small)
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("caused_by",)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        """The finding whose :meth:`to_dict` is ``d`` (a schema-1 dict), or None when ``d`` holds
        a key this class does not know (a newer writer's extra key): the caller then keeps the
        dict itself, which renderers read alike, so no key is lost.

        ``cls.from_dict(f.to_dict()).to_dict() == f.to_dict()`` for every finding ``f``.
        """
        back = {j: a for a, j in cls._RENAME}
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            name = back.get(key, key)
            if name not in known or name.startswith("_"):
                return None
            kwargs[name] = _copy(value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The schema-1 JSON dict of this finding (plain values, copied)."""
        rename = dict(self._RENAME)
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in self._OPTIONAL and v in (None, [], "", 0):
                continue
            out[rename.get(f.name, f.name)] = _plain(v)
        return out

    # -- read-only mapping over the JSON keys ----------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _plain(v: Any) -> Any:
    if isinstance(v, Finding):
        return v.to_dict()
    if isinstance(v, (Starved,)):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _copy(v: Any) -> Any:
    """A deep copy of a JSON value, so a finding never shares a list with the dict it came from."""
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


@dataclass(eq=False)
class Cut(Finding):
    """Data left autograd (``kind``: numpy, item, tolist, data, detach, no_grad) and came back."""

    kind: str = "detach"
    chain: list[dict[str, Any]] = field(default_factory=list)
    #: where the cut happened: the exit's line, or the ``with torch.no_grad():`` line around it
    location: str | None = None
    reentry_location: str | None = None
    from_: dict[str, Any] = field(default_factory=dict)
    sources: list[int] = field(default_factory=list)
    to: dict[str, Any] = field(default_factory=dict)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    guess: bool = False
    ignored: bool = False
    #: the source line at ``location``, stripped (``tmp = torch.from_numpy(...)``)
    line: str = ""
    #: the line of the operation inside the ``no_grad`` block, when ``location`` is the with line
    exit_location: str | None = None
    #: what the policy decided the data is used as: ``module_input``, ``loss_arithmetic``, ...
    role: str = ""
    #: how many instances of this site the recording held (one loop iteration each)
    count: int = 1

    _RENAME: ClassVar[tuple[tuple[str, str], ...]] = (("from_", "from"),)
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("caused_by", "exit_location")


@dataclass(eq=False)
class Unreached(Finding):
    """A parameter no probed loss sends gradient to."""

    name: str = ""
    kind: str = "unreached"
    optimizers: list[str] = field(default_factory=list)
    module: str | None = None
    node: int | None = None
    #: index into ``Report.cuts`` of the cut that starves it
    cut: int | None = None


@dataclass(eq=False)
class RebuiltLeaf(Finding):
    """A leaf that requires grad but belongs to no module: a tensor rebuilt outside autograd."""

    name: str = ""
    kind: str = "reentry_leaf"
    optimizers: list[str] = field(default_factory=list)
    module: str | None = None
    node: int | None = None
    cut: int | None = None
    #: its gradient is used (an ``inputs=`` of autograd.grad, or ``.grad`` read by the script)
    consumed: bool = False
    #: losses whose graph holds it (what the cut there starves)
    losses: list[str] = field(default_factory=list)

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("caused_by", "consumed", "losses")


@dataclass(eq=False)
class Freed(Finding):
    """A node whose saved tensors an earlier backward freed."""

    node: int = 0
    op: str | None = None
    module: str | None = None
    losses: list[str] = field(default_factory=list)


@dataclass(eq=False)
class ScriptError(Finding):
    """A diagnosis made while running: ``backward_twice``, ``no_grad_root``, ``backward_failed``,
    ``script_error``, ``ddp_unused`` (an info: DDP's error explained by unreached parameters)."""

    kind: str = "script_error"
    message: str = ""
    location: str | None = None
    loss: str | None = None
    freed_by: dict[str, Any] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("caused_by", "loss", "freed_by", "nodes", "modules", "location", "reason")


@dataclass(eq=False)
class Opaque(Finding):
    """A region graphprobe can't see inside (checkpoint, torch.compile, custom Function)."""

    node: int = 0
    op: str | None = None
    module: str | None = None
    kind: str = "custom"
    confirmed: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        """The opaque region of a schema-1 entry (None when ``d`` has a key it does not know)."""
        if not set(d) <= {"node", "op", "module", "kind", "confirmed", "reason"}:
            return None
        return cls(node=d.get("node", 0), op=d.get("op"), module=d.get("module"),
                   kind=d.get("kind", "custom"), confirmed=d.get("confirmed", False),
                   reason=d.get("reason", ""))

    def to_dict(self) -> dict[str, Any]:
        """Schema 1's opaque entry: a note, not a finding with a severity."""
        return {"node": self.node, "op": self.op, "module": self.module, "kind": self.kind,
                "confirmed": self.confirmed, "reason": self.reason}


@dataclass
class Starved:
    """Parameters of one module that one cause starves: ``depth_net: 259 parameters held by opt``."""

    module: str
    params: list[str]
    optimizers: list[str]
    #: the losses that cannot reach them through this cut
    losses: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Starved":
        """The inverse of :meth:`to_dict` (``count`` is ``len(params)``, so it is not read)."""
        return cls(module=d["module"], params=list(d.get("params", [])),
                   optimizers=list(d.get("optimizers", [])), losses=list(d.get("losses", [])))

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "count": len(self.params), "params": list(self.params),
                "optimizers": list(self.optimizers), "losses": list(self.losses)}


@dataclass
class Cause:
    """One root cause, with what it explains. ``finding`` is ``(list, index)`` into the report."""

    severity: str
    kind: str
    title: str
    location: str | None
    line: str
    fix: str
    reason: str = ""
    count: int = 1
    starves: list[Starved] = field(default_factory=list)
    #: ("cuts" | "detached" | "freed" | "errors", index) of the finding this cause is
    finding: tuple[str, int] = ("cuts", 0)
    #: (list, index) of the findings it explains
    explains: list[tuple[str, int]] = field(default_factory=list)
    guess: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Cause":
        """The cause of a schema-1 ``causes`` entry; the inverse of :meth:`to_dict`."""
        f = d.get("finding") or {"list": "cuts", "index": 0}
        return cls(severity=d["severity"], kind=d["kind"], title=d.get("title", ""),
                   location=d.get("location"), line=d.get("line", ""), fix=d.get("fix", ""),
                   reason=d.get("reason", ""), count=d.get("count", 1),
                   starves=[Starved.from_dict(s) for s in d.get("starves", [])],
                   finding=(f["list"], f["index"]),
                   explains=[(e["list"], e["index"]) for e in d.get("explains", [])],
                   guess=d.get("guess", False))

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "kind": self.kind, "title": self.title,
                "location": self.location, "line": self.line, "count": self.count,
                "reason": self.reason, "fix": self.fix, "guess": self.guess,
                "finding": {"list": self.finding[0], "index": self.finding[1]},
                "starves": [s.to_dict() for s in self.starves],
                "explains": [{"list": k, "index": i} for k, i in self.explains]}
