"""The texts of the findings: why each verdict was given and what to write instead, for this line.

Every reason and fix graphprobe prints is written here, keyed by the severity policy's message
keys (:mod:`graphprobe.analysis.severity`), so the wording is reviewed in one place. The source
helpers read the user's file through ``linecache`` (the runner puts a relative script there) and
``ast``, once per file.
"""
from __future__ import annotations

from typing import Sequence

from ..locations import short_location, split_location
from ..record.source import enclosing_no_grad, source_line

__all__ = ["source_line", "enclosing_no_grad", "cut_reason", "cut_fix", "numpy_equivalents", "join_capped",
           "FIX_FREED", "FIX_UNREACHED", "MAX_LINE"]

MAX_LINE = 160  # no text line longer than this
FIX_FREED = ("sum the losses and call backward once ((loss1 + loss2).backward()), or pass "
             "retain_graph=True to the first backward")
FIX_UNREACHED = ("connect it to a loss, or remove it from the optimizer and freeze it "
                 "(requires_grad_(False)) if it is not meant to train")

_NP_TO_TORCH = {
    "np.clip": "torch.clamp", "np.stack": "torch.stack", "np.concatenate": "torch.cat",
    "np.asarray": "(nothing: keep the tensor)", "np.array": "(nothing: keep the tensor)",
    "np.ascontiguousarray": ".contiguous()", "np.exp": "torch.exp", "np.log": "torch.log",
    "np.sqrt": "torch.sqrt", "np.abs": "torch.abs", "np.absolute": "torch.abs", "np.maximum": "torch.maximum",
    "np.minimum": "torch.minimum", "np.mean": "torch.mean", "np.sum": "torch.sum", "np.max": "torch.amax",
    "np.min": "torch.amin", "np.matmul": "torch.matmul", "np.dot": "torch.matmul", "np.where": "torch.where",
    "np.tanh": "torch.tanh", "np.transpose": "torch.permute", "np.reshape": "torch.reshape",
    "np.expand_dims": "torch.unsqueeze", "np.squeeze": "torch.squeeze", "np.power": "torch.pow",
    "np.square": "torch.square", "np.floor": "torch.floor", "np.round": "torch.round",
    "np.sin": "torch.sin", "np.cos": "torch.cos", "np.hstack": "torch.hstack", "np.vstack": "torch.vstack",
}
_ARITH = {"×", "+", "−", "÷", "**", "//"}

def join_capped(names: Sequence[str], limit: int = 4) -> str:
    """``a, b, c, d … and 255 more``."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" … and {len(names) - limit} more"


def numpy_equivalents(chain: Sequence[str]) -> list[str]:
    """``np.clip → torch.clamp`` for the numpy calls in a cut's chain (arithmetic stays as it is)."""
    out: list[str] = []
    for op in chain:
        name = op.split("(")[0].strip()
        if name in _NP_TO_TORCH and f"{name} → {_NP_TO_TORCH[name]}" not in out:
            out.append(f"{name} → {_NP_TO_TORCH[name]}")
    return out


def cut_reason(key: str, kind: str, src: str | None, dst: str | None, blocked: Sequence[str],
               trained_by: Sequence[str]) -> str:
    """Why the policy gave its verdict (``key`` from :func:`~graphprobe.analysis.severity.judge_cut`)."""
    guess = key.endswith("+guess")
    key = key.replace("+guess", "")
    up = src or "the upstream module"
    down = dst or "the downstream op"
    losses = join_capped(list(blocked), 3) or "the loss behind it"
    by = join_capped(list(trained_by), 3)
    what = {"numpy": "a numpy round trip", "item": "an .item() value", "tolist": "a .tolist() value",
            "data": "a .data value", "no_grad": "a value computed under no_grad",
            "detach": "a .detach()", "value_match": "a tensor rebuilt outside autograd"}.get(kind, f"a {kind} cut")
    texts = {
        "consumed": "the tensor rebuilt here is made to require grad and its gradient is used "
                    "(an inputs= of autograd.grad, or .grad read): intended",
        "nothing_upstream": f"{what} of data that nothing trains: nothing upstream can be starved",
        "other_route": f"{what}, but {losses} reach{'es' if len(blocked) == 1 else ''} {up} by another route, uncut",
        "loss_arithmetic": f"{what} used only as loss arithmetic (a baseline, normaliser, target or weight); "
                           f"{up} is trained by {by or 'another loss'}: intended",
        "not_meant": f"{what} into {down}; {losses} is not followed by a step of the optimizer that holds "
                     f"{up}'s parameters, so it is not meant to train them: intended",
        "dead_term": f"{what} is added to the loss as a constant: that term shifts the loss and trains nothing "
                     f"(its gradient to {up} is lost)",
        "truncation": f"{what} inside {up}: truncated backpropagation (as repackage_hidden): intended",
        "gan": f"{what} into {down}, while {by or 'another loss'} reaches {up} through {down} uncut "
               "(a GAN's D(fake.detach())): intended",
        "detach_two_readings": f"{what} carries {up} output into {down}, and {up} is trained by {by or 'its own loss'}: "
                               f"layer-local training means it, but if {losses} should train {up} too "
                               "(the Cor bug), this detach is the bug",
        "starves": f"{what} cuts the only route from {up} to {losses}: {up}'s parameters get no gradient",
        "round_trip": f"{what} carries {up} output into {down}: {losses} cannot train {up}"
                      + (f", though {by} does" if by else ""),
    }
    text = texts.get(key, f"{what} between {up} and {down}")
    if guess:
        text += "; linked by value only (a guess), so at most a warning"
    return text


def cut_fix(kind: str, severity: str, chain: Sequence[str], with_location: str | None, line: str,
            role: str) -> str:
    """What to write instead, for this kind of cut at this line."""
    if severity == "info":
        return "nothing to fix if this is intended; add '# graphprobe: ignore' on the line to silence it"
    if kind == "no_grad":
        where = f" at {short_location(with_location)}" if with_location else ""
        return (f"move the call out of the `with torch.no_grad():`{where}, so the loss's gradient "
                "reaches the module upstream")
    if kind == "numpy":
        eq = numpy_equivalents(chain)
        arith = [op for op in chain if op.split(" ")[0] in _ARITH]
        tip = "stay in torch: drop .detach().numpy() and torch.from_numpy"
        if eq:
            tip += " and use " + ", ".join(eq)
        if arith:
            tip += f" ({', '.join(dict.fromkeys(arith))} stays as tensor arithmetic)"
        return tip + "; if numpy is unavoidable, wrap it in a custom torch.autograd.Function with its own backward"
    if kind == "data":
        return "drop .data: use the tensor itself (x, not x.data), so autograd records the use"
    if kind in ("item", "tolist"):
        return (f"keep the tensor: pass it on instead of its .{kind}() value "
                f"({'a Python number' if kind == 'item' else 'a list'} carries no gradient)")
    if kind == "detach":
        return "remove the .detach(), or mark the line '# graphprobe: ignore' if it is intended"
    if kind == "value_match":
        return ("keep the computation in torch between the two modules (no .numpy(), .item(), .tolist(), .data or "
                ".detach()); run under graphprobe.trace() to see the exact line")
    return "keep the computation in torch between the two modules, so the loss's gradient flows back upstream"


def quote(loc: str | None, line: str) -> str:
    """``case4_numpy.py:26  tmp = torch.from_numpy(...)``, capped to a readable length."""
    head = short_location(loc)
    text = f"{head}  {line}" if line else head
    return text if len(text) <= MAX_LINE - 10 else text[:MAX_LINE - 11] + "…"
