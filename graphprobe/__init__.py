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
import sys
import types
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
    "probe": "probe",
    "trace": "trace",
    "Trace": "trace",
    "assert_grad_flow": "assertions",
    "Report": "report",
    "ProbeGraph": "graph",
}

if TYPE_CHECKING:  # what a type checker and an IDE see: the eager imports
    from .assertions import assert_grad_flow
    from .graph import ProbeGraph
    from .probe import probe
    from .report import Report
    from .trace import Trace, trace


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


class _Package(types.ModuleType):
    """The package module, which never lets a submodule shadow the function of the same name.

    The import system binds each submodule on its package once it is loaded, so after
    ``import graphprobe.runner`` (which imports the ``probe`` submodule) ``graphprobe.probe``
    would be a module. ``graphprobe.probe`` and ``graphprobe.trace`` are the functions, as they
    were when this file imported everything eagerly; the submodules stay in ``sys.modules``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
