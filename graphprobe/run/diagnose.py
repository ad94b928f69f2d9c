"""What went wrong, in the user's words: a failed backward, a DDP error, the script's traceback.

Each function returns a typed finding (or text) for the report; the capture calls them while the
step is captured, so everything is written before the report is frozen.
"""
from __future__ import annotations

import linecache
import os
import re
import traceback
from typing import Any, Sequence

import torch

from ..analysis.messages import FIX_FREED
from ..model.findings import ScriptError as ScriptErrorFinding
from ..locations import is_user_file as _is_user_file, short_location as _short
from ..report import Report
from ..walk import iter_fns

__all__ = ["explain_backward_error", "explain_twice", "explain_no_grad", "ddp_unused_explained", "source_expr",
           "user_traceback", "TWICE", "NO_GRAD", "DDP_UNUSED"]

TWICE = "backward through the graph a second time"
NO_GRAD = "does not require grad"
DDP_UNUSED = "Expected to have finished reduction in the prior iteration"


def explain_twice(freed: list[Any], site: str | None, calls: Sequence[Any]) -> ScriptErrorFinding:
    """"Trying to backward through the graph a second time": which earlier backward freed it.

    ``calls`` are the step's backward calls so far (the failing one last), each with its
    ``roots`` and whether it retained its graph. Complexity: O(nodes behind the earlier losses).
    """
    freed_set = set(freed)
    freed_by: dict[str, Any] = {}
    for call in calls[:-1]:
        if call.retain:
            continue
        if any(fn in freed_set for fn in iter_fns(r.tensor.grad_fn for r in call.roots)):
            freed_by = {"loss": ", ".join(r.name for r in call.roots), "location": call.site}
            break
    loss = ", ".join(r.name for r in calls[-1].roots) if calls else "this loss"
    # The message names the freed nodes as the report does: the build writes it
    # (analysis.findings.describe_errors), before the report is frozen.
    return ScriptErrorFinding(kind="backward_twice", severity="error", location=site, freed_by=freed_by,
                              loss=loss, fix=FIX_FREED)


def explain_no_grad(tensors: list[Any], site: str | None, tr: Any) -> ScriptErrorFinding:
    """"element 0 of tensors does not require grad": where the recorder saw the loss cut off."""
    where = ""
    for t in tensors:
        if isinstance(t, torch.Tensor):
            prov = tr._tensor_prov(t)
            if prov is not None:
                chain = " → ".join(op for op, _ in prov.chain)
                where = f"; the chain was cut at {_short(prov.location)} ({prov.kind}: {chain})"
                break
    return ScriptErrorFinding(
        kind="no_grad_root", severity="error", location=site,
        message=(f"backward at {_short(site)} failed: the loss does not require grad, so nothing "
                 f"upstream can be trained{where or '; it was computed under no_grad or from detached data'}"),
        fix="compute the loss with grad enabled and without .detach()/.numpy()/.item() on the way")


def explain_backward_error(e: RuntimeError, tensors: list[Any], site: str | None, freed: list[Any],
                           calls: Sequence[Any], tr: Any) -> ScriptErrorFinding:
    """The finding for a backward that raised: freed graph, a root without grad, or anything else."""
    msg = str(e)
    if TWICE in msg:
        return explain_twice(freed, site, calls)
    if NO_GRAD in msg:
        return explain_no_grad(tensors, site, tr)
    return ScriptErrorFinding(kind="backward_failed", severity="error", location=site,
                              message=f"backward at {_short(site)} raised: {msg.splitlines()[0]}")


def source_expr(site: str | None) -> str | None:
    """``(loss1 + loss2)`` from a line ``(loss1 + loss2).backward()``."""
    if not site:
        return None
    path, _, line = site.rpartition(":")
    try:
        text = linecache.getline(path, int(line)).strip()
    except ValueError:
        return None
    m = re.match(r"^(.*?)\.backward\s*\(", text)
    return m.group(1).strip() if m else None


def user_traceback(exc: BaseException, script: str) -> str:
    """The script's own frames of a traceback, as ``file:line: code`` lines."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_file(f.filename)]
    last = frames[-3:]
    return "\n".join(f"  {os.path.basename(f.filename)}:{f.lineno}: {(f.line or '').strip()}" for f in last)


def ddp_unused_explained(exc: BaseException, report: Report) -> bool:
    """DDP's unused-parameter error, raised at the next forward, explained by unreached parameters.

    Then the step ended where graphprobe would have stopped the script: note the error and
    leave the unreached parameters (with their optimizers) as the finding.
    """
    if DDP_UNUSED not in str(exc):
        return False
    unreached = [d["name"] for d in report.detached if d["kind"] == "unreached"]
    if not unreached:
        return False
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_user_file(f.filename)]
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    names = ", ".join(unreached[:4]) + (f" and {len(unreached) - 4} more" if len(unreached) > 4 else "")
    text = (f"DistributedDataParallel raised at the next forward{where} (\"{DDP_UNUSED}\") because "
            f"{names} got no gradient; the step was complete, so graphprobe ended it there")
    report.notes.append(text)
    report.add_error(ScriptErrorFinding(kind="ddp_unused", severity="info", message=text,
                                        fix="see the unreached parameters above: connect them to a loss"))
    return True
