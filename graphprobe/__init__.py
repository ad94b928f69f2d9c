"""graphprobe: where a PyTorch autograd graph is connected, where it is cut, and why.

The public API::

    from graphprobe import probe, trace
    report = probe(loss1, loss2)      # in pdb or a notebook
    print(report); report.to_svg("cor.svg")

    with trace():                     # record cuts (numpy, .item(), .detach(), no_grad ...)
        ...forward...
        report = probe(loss1, loss2)

Importing the package does not import torch: each name below is loaded on first use (PEP 562).
That keeps the ``graphprobe`` command's start cheap and lets it turn a Ctrl-C that lands while
torch is still importing into one line and exit code 130, not a traceback.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import GraphprobeError, LayoutEngineMissing, ProbeInputError

__all__ = [
    "probe",
    "trace",
    "assert_grad_flow",
    "Trace",
    "Report",
    "ProbeGraph",
    "GraphprobeError",
    "ProbeInputError",
    "LayoutEngineMissing",
    "__version__",
]

#: The one place the version is written; pyproject.toml reads it (``dynamic = ["version"]``).
__version__ = "0.1.0"

# name -> the submodule that defines it
_LAZY = {
    "probe": "probing",
    "trace": "record.recorder",
    "Trace": "record.recorder",
    "assert_grad_flow": "assertions",
    "Report": "report",
    "ProbeGraph": "model.graph",
}

if TYPE_CHECKING:  # what a type checker and an IDE see: the eager imports
    from .assertions import assert_grad_flow
    from .model.graph import ProbeGraph
    from .probing import probe
    from .report import Report
    from .record.recorder import Trace, trace


def __getattr__(name: str) -> Any:
    """Load a public name from its submodule on first access, then keep it on the package."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
