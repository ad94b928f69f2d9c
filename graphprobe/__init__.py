"""graphprobe: where a PyTorch autograd graph is connected, where it is cut, and why.

The public API::

    from graphprobe import probe, trace
    report = probe(loss1, loss2)      # in pdb or a notebook
    print(report); report.to_svg("cor.svg")

    with trace():                     # record cuts (numpy, .item(), .detach(), no_grad ...)
        ...forward...
        report = probe(loss1, loss2)
"""
from __future__ import annotations

from .assertions import assert_grad_flow
from .errors import GraphprobeError, LayoutEngineMissing, ProbeInputError
from .graph import ProbeGraph
from .probe import probe
from .report import Report
from .trace import Trace, trace

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

__version__ = "0.1.0"
